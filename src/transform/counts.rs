//! Exact counts of the distinct values of a column, bounded: the state of
//! an encoder and of a `most_frequent` imputer. Values are typed
//! ([`Category`]) and sort as scikit-learn sorts them: strings by code
//! point, numbers numerically, `false < true`.

use std::collections::HashMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::pipeline::plan::Scalar;
use crate::transform::quantile::key;

/// One distinct value of a column (never null).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Bool(bool),
    Int(i64),
    /// A float by its order-preserving key, so it sorts numerically.
    Float(u64),
    Str(String),
}

impl Category {
    pub fn float(x: f64) -> Category {
        Category::Float(key(x))
    }

    pub fn to_scalar(&self) -> Scalar {
        match self {
            Category::Bool(b) => Scalar::Bool(*b),
            Category::Int(i) => Scalar::Int(*i),
            Category::Float(k) => Scalar::Float(crate::transform::quantile::value(*k)),
            Category::Str(s) => Scalar::Str(s.clone()),
        }
    }

    /// The category of a typed constant in a column of `dtype`, if it fits.
    pub fn of_scalar(s: &Scalar, dtype: &DataType) -> Option<Category> {
        match (s, dtype) {
            (Scalar::Bool(b), DataType::Boolean) => Some(Category::Bool(*b)),
            (Scalar::Str(s), DataType::String) => Some(Category::Str(s.clone())),
            (Scalar::Int(i), d) if d.is_integer() => Some(Category::Int(*i)),
            (Scalar::Float(f), d) if d.is_integer() && f.fract() == 0.0 => {
                Some(Category::Int(*f as i64))
            }
            (Scalar::Int(i), d) if d.is_float() => Some(Category::float(*i as f64)),
            (Scalar::Float(f), d) if d.is_float() => Some(Category::float(*f)),
            _ => None,
        }
    }

    /// As prep writes the value in JSON (`1`, `true`, `café`): the suffix of
    /// a one-hot column's name.
    pub fn label(&self) -> String {
        match self {
            Category::Bool(b) => b.to_string(),
            Category::Int(i) => i.to_string(),
            Category::Float(k) => {
                serde_json::json!(crate::transform::quantile::value(*k)).to_string()
            }
            Category::Str(s) => s.clone(),
        }
    }
}

impl Serialize for Category {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_scalar().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Category {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Scalar::deserialize(d)? {
            Scalar::Bool(b) => Category::Bool(b),
            Scalar::Int(i) => Category::Int(i),
            Scalar::Float(f) => Category::float(f),
            Scalar::Str(s) => Category::Str(s),
        })
    }
}

/// Counts per distinct value, plus the missing (null/NaN) count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValueCounts {
    #[serde(with = "pairs")]
    pub counts: HashMap<Category, u64>,
    pub missing: u64,
}

mod pairs {
    use super::*;
    pub fn serialize<S: serde::Serializer>(
        m: &HashMap<Category, u64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut v: Vec<(&Category, &u64)> = m.iter().collect();
        v.sort();
        v.serialize(s)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<HashMap<Category, u64>, D::Error> {
        let v: Vec<(Category, u64)> = Vec::deserialize(d)?;
        Ok(v.into_iter().collect())
    }
}

/// More distinct values than allowed (the caller names the column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooMany;

impl ValueCounts {
    /// Counts one chunk's values of `col`; `Err` once more than `limit`
    /// distinct values were seen.
    pub fn update(&mut self, col: &Column, limit: u64) -> Result<(), TooMany> {
        let s = col.as_materialized_series();
        match s.dtype() {
            DataType::String => {
                let ca = s.str().expect("string");
                // Count borrowed strings first: one allocation per distinct value.
                let mut local: HashMap<&str, u64> = HashMap::new();
                for v in ca.iter() {
                    match v {
                        Some(v) => *local.entry(v).or_default() += 1,
                        None => self.missing += 1,
                    }
                }
                for (v, n) in local {
                    *self.counts.entry(Category::Str(v.to_string())).or_default() += n;
                }
            }
            DataType::Boolean => {
                for v in s.bool().expect("bool").iter() {
                    match v {
                        Some(b) => *self.counts.entry(Category::Bool(b)).or_default() += 1,
                        None => self.missing += 1,
                    }
                }
            }
            d if d.is_float() => {
                let f = s.cast(&DataType::Float64).expect("float casts to f64");
                for v in f.f64().expect("f64").iter() {
                    match v {
                        Some(x) if !x.is_nan() => {
                            *self.counts.entry(Category::float(x)).or_default() += 1
                        }
                        _ => self.missing += 1,
                    }
                }
            }
            d if d.is_integer() => {
                let i = s.cast(&DataType::Int64).expect("integer casts to i64");
                for v in i.i64().expect("i64").iter() {
                    match v {
                        Some(x) => *self.counts.entry(Category::Int(x)).or_default() += 1,
                        None => self.missing += 1,
                    }
                }
            }
            _ => {
                let t = s.cast(&DataType::String).expect("casts to string");
                return self.update(&t.into_column(), limit);
            }
        }
        if self.counts.len() as u64 > limit {
            return Err(TooMany);
        }
        Ok(())
    }

    pub fn merge(&mut self, other: &ValueCounts, limit: u64) -> Result<(), TooMany> {
        for (k, v) in &other.counts {
            *self.counts.entry(k.clone()).or_default() += v;
        }
        self.missing += other.missing;
        if self.counts.len() as u64 > limit {
            return Err(TooMany);
        }
        Ok(())
    }

    /// Categories in sorted order with their counts.
    pub fn sorted(&self) -> Vec<(Category, u64)> {
        let mut v: Vec<(Category, u64)> =
            self.counts.iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort();
        v
    }

    /// The most frequent value, the smallest on a tie (scikit-learn's
    /// `_most_frequent`); `None` without any value.
    pub fn most_frequent(&self) -> Option<Category> {
        let best = self.counts.values().copied().max()?;
        self.counts
            .iter()
            .filter(|(_, n)| **n == best)
            .map(|(k, _)| k)
            .min()
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sort_and_break_ties_low() {
        let mut c = ValueCounts::default();
        let col = Column::new(
            "s".into(),
            [Some("b"), Some("a"), None, Some("b"), Some("a"), Some("é")],
        );
        c.update(&col, 10).unwrap();
        assert_eq!(c.missing, 1);
        assert_eq!(c.most_frequent(), Some(Category::Str("a".into())));
        let labels: Vec<String> = c.sorted().iter().map(|(k, _)| k.label()).collect();
        assert_eq!(labels, vec!["a", "b", "é"]);
        assert!(c.update(&col, 2).is_err());
    }

    #[test]
    fn numbers_sort_numerically_and_serialize_typed() {
        let mut c = ValueCounts::default();
        c.update(&Column::new("i".into(), [10i64, -2, 3, 3]), 10)
            .unwrap();
        let keys: Vec<Category> = c.sorted().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            vec![Category::Int(-2), Category::Int(3), Category::Int(10)]
        );
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"counts":[[-2,1],[3,2],[10,1]],"missing":0}"#);
        let back: ValueCounts = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        let mut f = ValueCounts::default();
        f.update(
            &Column::new("f".into(), [2.5f64, -1.0, f64::NAN, -0.0, 0.0]),
            10,
        )
        .unwrap();
        assert_eq!(f.missing, 1);
        assert_eq!(f.most_frequent(), Some(Category::float(0.0)));
        assert_eq!(f.sorted()[0].0, Category::float(-1.0));
    }
}
