"""Running a trained captioner: with torch, or without it through ONNX Runtime.

``base`` (what every runtime gives: :class:`~.base.CaptionRuntime`, :class:`~.base.RuntimeCaption`,
which runtime to use), ``choice`` (opening one, the one place that picks), ``torch_captioner``
(the network itself), ``onnx_captioner`` + ``onnx_sessions`` + ``numpy_beam`` (the ONNX graphs a
model file carries and the same beam search in numpy: no torch), ``export`` (writing those graphs
into a model file; needs torch and onnx).
"""
