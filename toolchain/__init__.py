"""stq: stochastic-ternary QKeras models onto STM32, bit-exact, with on-device robustness tests."""

__version__ = "0.1.0"
