"""BERT through transformers, wrapped to take token ids and return class logits."""

from __future__ import annotations

import torch
from torch import nn


class TextClassifier(nn.Module):
    """input_ids (batch, seq) -> logits; padding (id `pad_id`) is masked out of attention."""

    def __init__(self, bert: nn.Module, pad_id: int = 0):
        super().__init__()
        self.bert, self.pad_id = bert, pad_id

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=input_ids, attention_mask=(input_ids != self.pad_id).long()).logits


def pretrained(folder: str, num_classes: int, freeze_encoder: bool) -> TextClassifier:
    from transformers import BertForSequenceClassification
    from transformers.utils import logging

    logging.set_verbosity_error()  # its load report lists the new classifier head as missing: expected
    logging.disable_progress_bar()  # suite shows its own progress
    bert = BertForSequenceClassification.from_pretrained(folder, num_labels=num_classes)
    for parameter in bert.bert.parameters():
        parameter.requires_grad = not freeze_encoder
    return TextClassifier(bert)


def from_config(vocab_size: int, num_classes: int, layers: int, hidden: int, heads: int, seq_len: int) -> TextClassifier:
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=4 * hidden,
                        max_position_embeddings=max(seq_len, 512), num_labels=num_classes)
    return TextClassifier(BertForSequenceClassification(config))
