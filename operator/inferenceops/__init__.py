"""inferenceops: live status of remote model-inference endpoints, in InferenceEndpoint resources."""

__version__ = "0.1.0"
