"""Make this machine serve like an AVX2-only CPU without an int8 kernel (`serve_bench --emulate-avx2`).

On its PYTHONPATH every Python process of a served benchmark imports this at start: torch's int8 matrix
product then runs its reference loop (oneDNN off), as on CPUs where torch has no fast int8 kernel;
ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS and ONEDNN_MAX_CPU_ISA (set by serve_bench) limit the other
kernels to AVX2. An emulation, not a measurement of such a CPU: its figures say what the load-time
precision decision does there, not how fast that CPU is.
"""

try:
    import torch
except ImportError:  # a process of the benchmark that has no torch: nothing to emulate
    pass
else:
    torch.backends.mkldnn.enabled = False
