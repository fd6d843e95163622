"""Supervised fine-tuning on game transcripts (`spiral sft`): data in `data.py`, the loop in `loop.py`."""
