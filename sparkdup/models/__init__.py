"""Embedding models: the default EfficientNet-Lite0 rebuilt from its PyTorch weights, and a registry."""
import os

# TensorFlow's C++ start-up notices (oneDNN, CPU features) would otherwise be printed by every
# Python worker into the job's stderr, between sparkdup's own (possibly JSON) log lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
