"""A 4-instance SageMaker Processing job running prep (SageMaker Python SDK v2).

Each instance runs `prep run ... --worker auto`: prep reads its index from
/opt/ml/config/resourceconfig.json, reads its byte-balanced share of the
input straight from S3, and the instances coordinate through
s3://.../prepared/sentiment/_work/. Instance 0 writes scaler.json,
manifest.json and, last, _SUCCESS.

    python deploy/sagemaker/run_processing_job.py \
        --image 123456789012.dkr.ecr.us-east-1.amazonaws.com/prep:0.1.0 \
        --role arn:aws:iam::123456789012:role/SageMakerProcessingRole \
        --pipeline s3://my-bucket/pipelines/sentiment.toml
"""
import argparse

from sagemaker.processing import ProcessingInput, Processor

parser = argparse.ArgumentParser()
parser.add_argument("--image", required=True)
parser.add_argument("--role", required=True)
parser.add_argument("--pipeline", required=True, help="s3:// URI of the pipeline TOML")
parser.add_argument("--instances", type=int, default=4)
parser.add_argument("--instance-type", default="ml.m5.2xlarge")
args = parser.parse_args()

processor = Processor(
    image_uri=args.image,
    role=args.role,
    instance_count=args.instances,
    instance_type=args.instance_type,
    # Exec form: prep is PID 1 and receives SIGTERM when the job is stopped.
    entrypoint=["prep", "run", "/opt/ml/processing/input/code/pipeline.toml", "--worker", "auto"],
    env={"PREP_WAIT_TIMEOUT": "45m"},
    max_runtime_in_seconds=4 * 3600,
)
processor.run(
    inputs=[
        # The pipeline file goes to every instance. The data is NOT a
        # ProcessingInput: prep reads input.uri (s3://...) itself, each worker
        # its own contiguous share, so the output order follows the input order.
        ProcessingInput(
            source=args.pipeline,
            destination="/opt/ml/processing/input/code",
            s3_data_distribution_type="FullyReplicated",
        ),
    ],
    # No ProcessingOutput either: output.uri in the pipeline is an s3:// prefix
    # that prep writes with multipart uploads as it goes.
    wait=True,
    logs=True,
)
