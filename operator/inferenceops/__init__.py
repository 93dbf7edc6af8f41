"""inferenceops: live status of remote model-inference endpoints, written into InferenceEndpoint resources."""

__version__ = "0.1.0"
