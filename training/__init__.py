"""Pretraining and fine-tuning of LoTLIP models (``python -m training pretrain|finetune|evaluate``).

This room holds the datasets (folders with captions, manifests, tar shards, procedural scenes),
the losses, the training loop and retrieval evaluation. It imports ``lotlip`` only, never
``app``; ``app`` may import it (the demo's scenes, fine-tuning from the GUI and CLI).
"""
