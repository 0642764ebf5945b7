#!/usr/bin/env python3
"""Seeded generator of a realistic synthetic product-reviews CSV.

Usage:
    python3 sample_data/generate_reviews.py --rows N --seed S --out PATH \
        [--null-rate 0.03] [--files K] [--gzip]

* ``--files 1`` (default): PATH is a file; it is gzip-compressed when PATH
  ends in ``.gz`` (e.g. ``reviews.csv.gz``).
* ``--files K`` (K > 1): PATH is a directory (created if needed) and the rows
  are split, in order, into K contiguous chunks ``reviews-000.csv``,
  ``reviews-001.csv``, ... each with its own header line.  Chunk files are
  gzip-compressed (``reviews-000.csv.gz`` ...) when ``--gzip`` is given or
  PATH itself ends in ``.csv.gz``.

The row stream depends only on (--rows, --seed, --null-rate): splitting into
files does not change the rows, and gzip output is byte-deterministic
(mtime 0, no embedded file name).

Columns (in order):
    review_id            int, 1..N, unique and increasing; never null
    product_id           string like "B07XK2QH9Z" (skewed popularity)
    text                 review text, 20-400 chars; ~5% of rows each contain
                         a comma, double quotes, or an embedded newline
    label                int 0/1 (positive review); never null
    rating               int 1..5 (J-shaped distribution)
    helpful_votes        int 0..500, heavily skewed (most are 0)
    price                float, 2 decimals, 1..500 (log-normal)
    review_length        int = len(text) (0 when text is null)
    days_since_purchase  int 0..1000 (exponential-ish)
    verified_purchase    bool written as true/false; never null
    sentiment_score      float in [-1, 1], 4 decimals
    constant_feature     always 1.0; never null

Nulls: each of product_id, text, rating, helpful_votes, price,
days_since_purchase and sentiment_score is written empty with probability
null_rate/5, independently (default 0.006 each -> ~4.1% of rows have at least
one empty field).  In addition ~0.3% of price values are written as ``NA`` and
~0.2% of sentiment_score values as ``NaN`` (~4.6% of rows have >= 1 null of
any kind with the defaults).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import math
import os
import random
import sys

COLUMNS = [
    "review_id",
    "product_id",
    "text",
    "label",
    "rating",
    "helpful_votes",
    "price",
    "review_length",
    "days_since_purchase",
    "verified_purchase",
    "sentiment_score",
    "constant_feature",
]

# ---------------------------------------------------------------------------
# Word lists.  None of these contain commas, double quotes or newlines, so the
# special characters only appear where they are deliberately inserted.
# ---------------------------------------------------------------------------
PRODUCTS = [
    "blender", "headset", "charger", "backpack", "kettle", "lamp", "keyboard",
    "mouse", "water bottle", "phone case", "speaker", "tripod", "jacket",
    "yoga mat", "coffee grinder", "toaster", "monitor", "router", "vacuum",
    "air fryer", "drill", "pillow", "desk chair", "watch", "camera bag",
    "hair dryer", "frying pan", "tent", "flashlight", "cable",
]
ASPECTS = [
    "build quality", "battery life", "price", "design", "packaging",
    "customer service", "sound", "fit", "material", "size", "color",
    "instructions", "shipping", "performance", "finish", "handle", "lid",
    "screen", "motor", "strap", "zipper", "warranty", "setup", "noise level",
]
POS_ADJ = [
    "great", "excellent", "solid", "sturdy", "fantastic", "reliable",
    "impressive", "well made", "perfect", "beautiful", "comfortable",
    "lightweight", "quiet", "fast", "durable", "amazing", "nice", "superb",
]
NEG_ADJ = [
    "flimsy", "cheap", "disappointing", "broken", "noisy", "slow", "awful",
    "poorly made", "useless", "fragile", "uncomfortable", "defective",
    "terrible", "mediocre", "wobbly", "overpriced", "loud", "leaky",
]
NEU_ADJ = [
    "okay", "average", "fine", "decent", "acceptable", "standard", "basic",
    "as described", "ordinary", "reasonable",
]
ADVERBS = ["really", "very", "quite", "pretty", "surprisingly", "extremely", "fairly", "incredibly"]
TIMES = [
    "a week", "two weeks", "a month", "three months", "six months", "a year",
    "a few days", "two days", "ten days", "the whole summer",
]
PEOPLE = ["my wife", "my husband", "my son", "my daughter", "my mom", "my dad", "a friend", "my roommate", "my boss"]

POS_TEMPLATES = [
    "The {aspect} is {adv} {pos}.",
    "I love this {product}!",
    "This {product} is {adv} {pos} for the money.",
    "Works exactly as advertised and the {aspect} is {pos}.",
    "I have used it for {time} and it is still {pos}.",
    "Bought this for {person} and they think it is {pos}.",
    "Would definitely buy this {product} again.",
    "Five stars for the {aspect}.",
    "Honestly the best {product} I have owned.",
    "Setup took two minutes and the {aspect} is {pos}.",
    "Highly recommend this {product} to anyone who wants something {pos}.",
]
NEG_TEMPLATES = [
    "The {aspect} is {adv} {neg}.",
    "I regret buying this {product}.",
    "This {product} feels {adv} {neg} and I returned it.",
    "After {time} the {aspect} stopped working.",
    "Bought this for {person} and it was {neg} out of the box.",
    "Do not waste your money on this {product}.",
    "The {aspect} is {neg} and support never replied.",
    "It broke after {time} of light use.",
    "Save yourself the trouble and skip this {product}.",
    "One star because the {aspect} is {adv} {neg}.",
]
NEU_TEMPLATES = [
    "The {aspect} is {neu}.",
    "It arrived after {time} in {neu} packaging.",
    "It does what a {product} should do.",
    "Nothing special but the {aspect} is {neu}.",
    "I use it every day for work.",
    "The color is slightly different from the photos.",
    "For the price this {product} is {neu}.",
    "Delivery took {time} which was {neu}.",
]
COMMA_SENTENCES = [
    "Overall, I am {verdict}.",
    "Long story short, it is {verdict_adj}.",
    "To be fair, the {aspect} could be better.",
    "First impressions: solid, compact, and easy to clean.",
    "Pros: {pos}, {pos}, and cheap. Cons: the {aspect}.",
    "It is {neu}, not great, not terrible.",
    "However, the {aspect} is {neg}.",
    "Honestly, for the price, you cannot beat it.",
    "In short, {verdict_adj}, {verdict_adj}, {verdict_adj}.",
]
QUOTE_SENTENCES = [
    'The box said "{pos}" but I would call it "{neg}".',
    '{person_cap} called it "a total game changer".',
    'The listing claims "premium {aspect}" which is a stretch.',
    'It is advertised as "{pos}" and it really is.',
    'The manual literally says "do not use near water".',
    'My only complaint is the "{aspect}" which feels {neg}.',
    'Search for "{product}" and this is the one to get.',
    'The label reads "{pos} {product}" and I agree.',
]
VERDICTS = ["happy with it", "satisfied", "disappointed", "on the fence", "impressed", "not convinced"]
VERDICT_ADJ = ["worth it", "not worth it", "good enough", "a solid buy", "meh", "a great deal"]

ID_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


def _fill(tmpl: str, rng: random.Random) -> str:
    """Fill one template with random words (used only at start-up)."""
    ch = rng.choice
    person = ch(PEOPLE)
    return tmpl.format(
        aspect=ch(ASPECTS), product=ch(PRODUCTS), pos=ch(POS_ADJ),
        neg=ch(NEG_ADJ), neu=ch(NEU_ADJ), adv=ch(ADVERBS), time=ch(TIMES),
        person=person, person_cap=person[0].upper() + person[1:],
        verdict=ch(VERDICTS), verdict_adj=ch(VERDICT_ADJ),
    )


def _pool(templates, size: int, rng: random.Random) -> list[str]:
    return [_fill(templates[i % len(templates)], rng) for i in range(size)]


class Generator:
    """Produces rows (as lists of strings) deterministically from a seed."""

    def __init__(self, rows: int, seed: int, null_rate: float):
        self.rows = rows
        self.rng = rng = random.Random(seed)
        self.p_null = null_rate / 5.0
        # Pre-built sentence pools: all per-row text work is then just
        # choices() + join(), which keeps 5M rows within a few minutes.
        self.pos_pool = _pool(POS_TEMPLATES, 3000, rng)
        self.neg_pool = _pool(NEG_TEMPLATES, 3000, rng)
        self.neu_pool = _pool(NEU_TEMPLATES, 1500, rng)
        self.comma_pool = _pool(COMMA_SENTENCES, 600, rng)
        self.quote_pool = _pool(QUOTE_SENTENCES, 600, rng)
        # Product catalogue with skewed popularity.
        n_products = max(50, min(200_000, rows // 25))
        seen: set[str] = set()
        products: list[str] = []
        while len(products) < n_products:
            pid = "B0" + "".join(rng.choices(ID_CHARS, k=8))
            if pid not in seen:
                seen.add(pid)
                products.append(pid)
        self.products = products

    def _text(self, label: int) -> str:
        rng = self.rng
        r = rng.random
        main = self.pos_pool if label == 1 else self.neg_pool
        k = 1 + int(r() * r() * 9)  # 1..9 sentences, skewed short
        sents = rng.choices(main, k=k)
        if r() < 0.35:  # sprinkle in a neutral sentence
            sents.insert(int(r() * (len(sents) + 1)), self.neu_pool[int(r() * len(self.neu_pool))])
        extra = []
        if r() < 0.05:
            extra.append(self.comma_pool[int(r() * len(self.comma_pool))])
        if r() < 0.05:
            extra.append(self.quote_pool[int(r() * len(self.quote_pool))])
        newline = r() < 0.05
        budget = 400 - sum(len(e) + 1 for e in extra) - (1 if newline else 0)
        text = " ".join(sents)
        if len(text) > budget:
            cut = text.rfind(" ", 0, budget - 1)
            if cut <= 0:
                cut = budget - 1
            text = text[:cut].rstrip(".!") + "."
        if extra:
            # Special sentences go either before or after the main body.
            text = text + " " + " ".join(extra) if r() < 0.5 else " ".join(extra) + " " + text
        if newline:
            pos = text.find(". ")
            if pos < 0:
                pos = text.find("! ")
            if pos >= 0:
                text = text[: pos + 1] + ("\n" if r() < 0.7 else "\n\n") + text[pos + 2:]
            else:  # single sentence: add a short second line
                add = "\nThanks."
                if len(text) + len(add) > 400:
                    text = text[: 400 - len(add)]
                text += add
        if len(text) < 20:
            text += " Would buy again."
        return text

    def rows_iter(self):
        rng = self.rng
        r = rng.random
        gauss = rng.gauss
        pareto = rng.paretovariate
        expo = rng.expovariate
        p = self.p_null
        products = self.products
        n_prod = len(products)
        text_fn = self._text
        for rid in range(1, self.rows + 1):
            # rating: J-shaped distribution
            u = r()
            if u < 0.08:
                rating = 1
            elif u < 0.14:
                rating = 2
            elif u < 0.24:
                rating = 3
            elif u < 0.50:
                rating = 4
            else:
                rating = 5
            if rating >= 4:
                label = 1
            elif rating <= 2:
                label = 0
            else:
                label = 1 if r() < 0.5 else 0
            if r() < 0.02:  # label noise
                label = 1 - label
            text = text_fn(label)
            s = 0.35 * (rating - 3) + gauss(0.0, 0.2)
            s = -1.0 if s < -1.0 else (1.0 if s > 1.0 else s)
            sent = "%.4f" % s
            if sent == "-0.0000":
                sent = "0.0000"
            hv = int(pareto(1.16)) - 1
            if hv > 500:
                hv = 500
            price = math.exp(gauss(3.2, 1.0))
            price = 1.0 if price < 1.0 else (500.0 if price > 500.0 else price)
            days = int(expo(1 / 150.0))
            if days > 1000:
                days = 1000
            pid = products[int(n_prod * r() ** 2)]
            verified = "true" if r() < 0.85 else "false"

            # independent nulls
            if r() < p:
                pid = ""
            if r() < p:
                text = ""
            rating_s = "" if r() < p else str(rating)
            hv_s = "" if r() < p else str(hv)
            if r() < p:
                price_s = ""
            elif r() < 0.003:
                price_s = "NA"
            else:
                price_s = "%.2f" % price
            days_s = "" if r() < p else str(days)
            if r() < p:
                sent = ""
            elif r() < 0.002:
                sent = "NaN"
            yield (
                rid, pid, text, label, rating_s, hv_s, price_s, len(text),
                days_s, verified, sent, "1.0",
            )


def _open_out(path: str, gz: bool):
    if gz:
        raw = open(path, "wb")
        gzf = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0)
        txt = io.TextIOWrapper(gzf, encoding="utf-8", newline="")
        return txt, (txt, gzf, raw)
    f = open(path, "w", encoding="utf-8", newline="")
    return f, (f,)


def _close_out(handles):
    for h in handles:
        h.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Generate a synthetic product-reviews CSV.")
    ap.add_argument("--rows", type=int, required=True, help="number of data rows")
    ap.add_argument("--seed", type=int, required=True, help="RNG seed")
    ap.add_argument("--out", required=True, help="output file (or directory when --files > 1)")
    ap.add_argument("--null-rate", type=float, default=0.03,
                    help="each nullable column is empty with probability null-rate/5 (default 0.03)")
    ap.add_argument("--files", type=int, default=1, help="split rows into K files (PATH is a directory)")
    ap.add_argument("--gzip", action="store_true", help="gzip the per-chunk files when --files > 1")
    args = ap.parse_args(argv)
    if args.rows < 0:
        ap.error("--rows must be >= 0")
    if args.files < 1:
        ap.error("--files must be >= 1")
    if not 0.0 <= args.null_rate <= 5.0:
        ap.error("--null-rate must be in [0, 5]")

    gen = Generator(args.rows, args.seed, args.null_rate)
    rows = gen.rows_iter()

    if args.files == 1:
        targets = [(args.out, args.rows, args.out.endswith(".gz"))]
        parent = os.path.dirname(args.out)
        if parent:
            os.makedirs(parent, exist_ok=True)
    else:
        os.makedirs(args.out, exist_ok=True)
        gz = args.gzip or args.out.rstrip("/").endswith(".csv.gz")
        base, rem = divmod(args.rows, args.files)
        targets = []
        for i in range(args.files):
            name = "reviews-%03d.csv%s" % (i, ".gz" if gz else "")
            targets.append((os.path.join(args.out, name), base + (1 if i < rem else 0), gz))

    batch = 20_000
    for path, n, gz in targets:
        f, handles = _open_out(path, gz)
        try:
            w = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
            w.writerow(COLUMNS)
            left = n
            while left > 0:
                take = batch if left > batch else left
                w.writerows(next(rows) for _ in range(take))
                left -= take
        finally:
            _close_out(handles)
        print("wrote %s (%d rows)" % (path, n), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
