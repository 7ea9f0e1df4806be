"""GPT-2 (transformers' GPT2LMHeadModel) and the byte-level BPE tokenizer it is trained with here."""

from __future__ import annotations

from typing import Any

import torch


def bpe_tokenizer(texts: tuple[str, ...], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer (GPT-2's kind) trained on `texts`: GPT-2's own vocabulary cannot
    be downloaded here. Deterministic for the same texts and size."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=vocab_size, min_frequency=2, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>", unk_token="<|endoftext|>")


def gpt2(vocab_size: int, layers: int, hidden: int, heads: int, context: int, eos_id: int) -> torch.nn.Module:
    """GPT2LMHeadModel with its Conv1D projections turned into the equivalent nn.Linear (same
    outputs), so that every method that knows Linear layers (int8, pruning) applies to it."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=vocab_size, n_positions=context, n_embd=hidden, n_layer=layers, n_head=heads,
                        bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id)
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"  # what transformers would guess, said outright (else it warns on every training)
    linear_projections(model)
    return model


def linear_projections(model: torch.nn.Module) -> None:
    from transformers.pytorch_utils import Conv1D

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                linear = torch.nn.Linear(child.weight.shape[0], child.nf)
                with torch.no_grad():
                    linear.weight.copy_(child.weight.T)
                    linear.bias.copy_(child.bias)
                setattr(parent, name, linear)
