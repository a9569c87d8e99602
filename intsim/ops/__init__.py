"""Layer 5, the integer-only non-linear operators, one published scheme per module: gemmlowp /
TFLite fixed point, TFLite's int8/int16 LOGISTIC, TANH and int16 SOFTMAX (``tflite_act``),
I-BERT, I-ViT, I-LLM and the integer square roots. Each returns an
:class:`~intsim.regs.opresult.OpResult`; its float64 reference is in ``reference/nonlinear.py``.

Imports the layers below (core, regs, hw, quant), never a sibling's private names.
"""
