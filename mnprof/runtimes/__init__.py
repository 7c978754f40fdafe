"""The runtimes a model runs on (eager, compiled, TorchScript, onnxruntime, int8, bfloat16, ...): one registry
entry per runtime with what it can do, the builders that prepare a model for it, and int8 quantisation."""
