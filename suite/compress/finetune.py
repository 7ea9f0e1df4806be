"""Fine-tuning as a compression step: a few epochs of the model's own training recipe, usually
after pruning, to win back accuracy. Weights that pruning set to zero stay zero."""

from __future__ import annotations

from typing import Any

from pydantic import PositiveFloat, PositiveInt

from suite.compress.base import CompressContext, MethodSpec, NotApplicable
from suite.config.params import Params


class FinetuneParams(Params):
    epochs: PositiveInt = 5
    lr: PositiveFloat | None = None  # None: a tenth of the recipe's learning rate
    batch_size: PositiveInt | None = None  # None: the recipe's


def apply_finetune(module: Any, params: FinetuneParams, context: CompressContext) -> tuple[Any, dict]:
    from suite.build.training import TrainConfig, train

    trainable = [p for p in module.parameters() if p.requires_grad and p.is_floating_point()]
    if not trainable or not context.data.labelled:
        raise NotApplicable("nothing to train: fine-tune before quantizing, on a labelled dataset")
    recipe = context.train_recipe
    epochs = min(params.epochs, context.max_epochs or params.epochs)
    config = TrainConfig(epochs=epochs, batch_size=params.batch_size or recipe.get("batch_size", 32),
                         lr=params.lr or recipe.get("lr", 1e-3) / 10, weight_decay=recipe.get("weight_decay", 0.0),
                         patience=epochs, max_batches=context.max_batches)
    handles = [p.register_hook(keep_zeros(p)) for p in trainable if p.dim() > 1 and (p == 0).any()]
    try:
        record = train(module, context.data, config, context.seed, context.on_epoch)
    finally:
        for handle in handles:
            handle.remove()
    return module, {"training": record}


def keep_zeros(parameter: Any) -> Any:
    """A gradient hook that zeroes the gradient of weights that are zero now. With a zero gradient
    from the start AdamW's moments stay zero and so does the step: pruned weights stay pruned."""
    mask = (parameter != 0).to(parameter.dtype)
    return lambda grad: grad * mask


FINETUNE = MethodSpec("a few epochs of the model's training recipe (keeps pruned weights at zero)", FinetuneParams,
                      apply_finetune)
