"""Per-layer C records: the parameter record's field list (record), the values of the stq ops
(stq) and of the TFLite ops (tflite)."""
