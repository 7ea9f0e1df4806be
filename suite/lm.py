"""Generative decoders: text tokenized by the model's own tokenizer, greedy decoding through a KV
cache, perplexity and greedy fidelity. Knows no model or backend by name: a backend's
`prepare_decoder(model, cache, tokenizer)` returns a Decoder over any causal LM with the
`transformers` forward (`input_ids`, `position_ids`, `cache`, `logits_to_keep` -> `.logits`,
transformers 5).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from suite.errors import SuiteError

STATIC_BUCKET = 256  # a static KV cache's length is a multiple of this
MAX_TOKENS = 20_000_000  # tokens of one corpus held as int64 (160 MB): a bound on a user's text file


@dataclass(frozen=True)
class LmData:
    """A text corpus tokenized by one model's tokenizer: each split as one stream of token ids."""

    corpus: Any  # the TextCorpus
    tokenizer: Any  # encode(str) -> list[int], decode(list[int]) -> str (a transformers tokenizer)
    tokenizer_id: str  # what it is and a hash of its vocabulary, for cache keys and results
    vocab_size: int
    train_ids: Any  # 1-D int64 tensors
    val_ids: Any
    test_ids: Any
    labelled: bool = True  # next-token prediction labels itself

    @property
    def name(self) -> str:
        return self.corpus.name

    def describe(self) -> dict[str, Any]:
        return {**self.corpus.describe(), "tokenizer": self.tokenizer_id, "vocab_size": self.vocab_size,
                "tokens": {"train": len(self.train_ids), "val": len(self.val_ids), "test": len(self.test_ids)}}

    def windows(self, split: str, length: int, count: int, start: int = 0) -> Any:
        """`count` consecutive windows of `length` tokens from a split, shape (count, length),
        wrapping around when the split is shorter."""
        ids = getattr(self, f"{split}_ids")
        need = start + count * length
        if need > len(ids):
            ids = ids.repeat(-(-need // len(ids)))
        return ids[start:need].view(count, length).clone()


def tokenizer_id(tokenizer: Any, label: str) -> str:
    """'label, vocabulary N, sha1 …': which tokenizer, exactly, so a cached model matches its tokens."""
    vocab = sorted(tokenizer.get_vocab().items())
    digest = hashlib.sha1(repr(vocab).encode()).hexdigest()[:12]
    return f"{label}, vocabulary {len(vocab)}, sha1 {digest}"


def tokenized(corpus: Any, tokenizer: Any, label: str) -> LmData:
    """The corpus's splits as token-id streams, passages joined by the tokenizer's end-of-text token."""
    import torch

    eos = tokenizer.eos_token_id
    streams = {}
    for split in ("train", "val", "test"):
        ids: list[int] = []
        for passage in getattr(corpus, split):
            ids += tokenizer.encode(passage, add_special_tokens=False) + ([eos] if eos is not None else [])
            if len(ids) > MAX_TOKENS:
                raise SuiteError(f"dataset {corpus.name!r}: the {split} split has more than {MAX_TOKENS:,} tokens")
        if len(ids) < 2:
            raise SuiteError(f"dataset {corpus.name!r}: the {split} split has fewer than 2 tokens")
        streams[split] = torch.tensor(ids, dtype=torch.int64)
    return LmData(corpus=corpus, tokenizer=tokenizer, tokenizer_id=tokenizer_id(tokenizer, label),
                  vocab_size=len(tokenizer), train_ids=streams["train"], val_ids=streams["val"],
                  test_ids=streams["test"])


class DecoderContract:
    """What the suite calls on a prepared decoder (suite.lm.Decoder, or a backend's own), each
    declared here. `model`: the float causal LM (its config, for positions and the KV cache);
    `cache_kind`: the KV cache in words. `start(batch, max_len)` empties the cache; `prefill(ids)`
    runs the prompt and returns the first new token of each sequence (batch, 1); `step(tokens)`
    feeds those back and returns the next; `generate(ids, new_tokens)` greedy tokens (batch,
    new_tokens); `logits(ids)` every position's (for perplexity); `cache_bytes()` the cache's size.
    Read with a default: `max_batch`, the most sequences it decodes at a time (None: any number);
    `file_bytes`, the bytes of the model file it runs (None: the float model's serialized size is
    its size); `weights_read_bytes`, the bytes one decode step reads (None: counted from the model,
    suite.tasks.generate.weights_read_bytes); `profile_ops(call, calls) -> (ops, wall_s,
    calls_made)`, its own profiler over `call` (None: no operator table); `timed_request(ids,
    new_tokens) -> (prefill_s, [step_s, ...])`, a whole greedy request timed by the backend's own
    clock, for one that runs a request in one call (None: the suite times prefill and steps);
    `load_sweep(prompts, new_tokens, requests, min_s, ttft_bound_ms, tpot_bound_ms, rate_steps,
    seed) -> dict`, a decoder behind a server loaded by concurrent users and request rates (None:
    none); `retokenized(tokens)`, for a decoder whose greedy tokens are its answers' text
    tokenized again, the reference's tokens through the same round trip before they are compared
    (None: compared as they are). `close()` stops what it holds outside this process (a server);
    called once the variant's process is done with it."""

    model: Any
    cache_kind: str
    max_batch: int | None = None
    file_bytes: int | None = None
    weights_read_bytes: int | None = None
    profile_ops: Callable[[Callable[[], Any], int], tuple[list, float, int]] | None = None
    timed_request: Callable[[Any, int], tuple[float, list[float]]] | None = None
    load_sweep: Callable[..., dict] | None = None
    retokenized: Callable[[Any], Any] | None = None

    def start(self, batch: int, max_len: int) -> None:
        raise NotImplementedError

    def prefill(self, ids: Any) -> Any:
        raise NotImplementedError

    def step(self, tokens: Any) -> Any:
        raise NotImplementedError

    def generate(self, ids: Any, new_tokens: int) -> Any:
        raise NotImplementedError

    def logits(self, ids: Any) -> Any:
        raise NotImplementedError

    def cache_bytes(self) -> int | None:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to stop by default."""


class Decoder(DecoderContract):
    """Greedy decoding with a KV cache through a causal LM's forward.

    `start(batch, max_len)` empties the cache; `prefill(ids)` runs the prompt and returns the first
    new token of each sequence, shape (batch, 1); `step(tokens)` feeds those back and returns the
    next ones. `cache`: "dynamic" grows the key/value tensors each token; "static" allocates them
    once at `max_len` (what torch.compile needs to keep one graph for every decode step); "fp8"
    grows too, holding keys and values in float8 (e4m3, a scale per tensor fixed at the prefill)
    and de-quantizing them whole at every step: a quarter of fp32's cache memory, not faster.
    `forward`: the model's forward, or a compiled version of it."""

    def __init__(self, model: Any, device: str, cache: str, forward: Callable | None = None):
        self.model, self.device, self.cache_kind = model, device, cache
        self.forward = forward or model.forward
        self.cache: Any = None
        self.position = 0
        self._static: dict[tuple[int, int], Any] = {}

    def start(self, batch: int, max_len: int) -> None:
        import torch
        from transformers import DynamicCache, QuantizedCache, StaticCache

        if self.cache_kind == "dynamic":
            self.cache = DynamicCache(config=self.model.config)
        elif self.cache_kind == "fp8":
            self.cache = QuantizedCache("fp8", config=self.model.config)
        else:  # one allocation per batch size and length bucket, zeroed for each request: a new one
            # would recompile. Lengths are rounded up to STATIC_BUCKET so that prompts of other
            # lengths share the cache and the compiled graphs (attention then spans the bucket).
            max_len = -(-max_len // STATIC_BUCKET) * STATIC_BUCKET
            key = (batch, max_len)
            fresh = key not in self._static
            if fresh:
                self._static[key] = StaticCache(config=self.model.config, max_cache_len=max_len)
            self.cache = self._static[key]
            if fresh:
                self._eager_first_token(batch)
            with torch.inference_mode():  # its tensors were made inside inference mode, by the forward
                self.cache.reset()
        self.position = 0

    def _eager_first_token(self, batch: int) -> None:
        """One token through the plain forward: the cache allocates its tensors on first use, and a
        compiled forward that saw it empty would compile again once it is not."""
        import torch

        with torch.inference_mode():
            self.model.forward(input_ids=torch.zeros(batch, 1, dtype=torch.int64, device=self.device),
                               position_ids=torch.zeros(1, 1, dtype=torch.int64, device=self.device),
                               cache=self.cache, use_cache=True, logits_to_keep=1)

    def _run(self, ids: Any) -> Any:
        import torch

        positions = torch.arange(self.position, self.position + ids.shape[1], device=self.device).unsqueeze(0)
        with torch.inference_mode():  # logits of the last position only, as transformers' generate does
            ids = ids.clone()  # an inference tensor, as the tokens it makes are: one compiled graph for both
            logits = self.forward(input_ids=ids, position_ids=positions, cache=self.cache, use_cache=True,
                                  logits_to_keep=1).logits
            self.position += ids.shape[1]
            return logits[:, -1:].argmax(dim=-1)

    def prefill(self, ids: Any) -> Any:
        return self._run(ids.to(self.device))

    def step(self, tokens: Any) -> Any:
        return self._run(tokens)

    def profile_ops(self, call: Callable[[], Any], calls: int) -> tuple[list, float, int]:
        """torch.profiler over `calls` calls of `call` (suite.measure.ops, suite.measure.profiling)."""
        import torch

        from suite.measure.ops import torch_ops

        return torch_ops(call, calls, torch.cuda.synchronize if self.device.startswith("cuda") else lambda: None)

    def logits(self, ids: Any) -> Any:
        """Next-token logits at every position of `ids` (no cache), as float32 on the host."""
        import torch

        with torch.inference_mode():
            return self.forward(input_ids=ids.to(self.device), use_cache=False).logits.float().cpu()

    def cache_bytes(self) -> int:
        """Bytes the key/value cache holds now (a static cache: all it allocated)."""
        layers = getattr(self.cache, "layers", None) or []
        total = 0
        for layer in layers:  # a quantized layer keeps (tensor, scale) pairs beside its float residue
            for name in ("keys", "values", "_quantized_keys", "_quantized_values"):
                held = getattr(layer, name, None)
                for tensor in held if isinstance(held, tuple) else (held,):
                    total += getattr(tensor, "nbytes", 0)
        return total

    def generate(self, ids: Any, new_tokens: int) -> Any:
        """Greedy continuation of `ids` (batch, prompt): the new tokens, shape (batch, new_tokens), host."""
        import torch

        self.start(ids.shape[0], ids.shape[1] + new_tokens)
        tokens = [self.prefill(ids)]
        for _ in range(new_tokens - 1):
            tokens.append(self.step(tokens[-1]))
        return torch.cat(tokens, dim=1).cpu()


KLD_TOP = 1024  # the reference's most likely tokens kept per position for the divergence (see divergence_parts)


def perplexity(decoder: DecoderContract, data: LmData, context: int, max_tokens: int, batch_size: int,
               split: str = "test", keep: bool = False, reference: dict | None = None) -> dict:
    """exp(mean negative log-likelihood) of a split (the test split; a search's trials: the
    validation split), in non-overlapping windows of `context` tokens (each window scored from its
    own start: no earlier context), at most `max_tokens`. One pass over the windows also gives,
    with `keep`, this model's summary of every scored position for a later variant's divergence
    (under "summary": see `summarize`), and with a `reference` summary, the divergence from it
    (under "divergence": see `divergence`)."""
    import math

    import torch
    import torch.nn.functional as F

    count = max(1, min(max_tokens, len(getattr(data, f"{split}_ids"))) // context)
    windows = data.windows(split, context, count)
    reason = None
    if reference is not None and len(reference["target_logp"]) != count * (context - 1):
        reference, reason = None, (f"the reference scored {len(reference['target_logp'])} positions, this variant "
                                   f"{count * (context - 1)} (other perplexity settings)")
    nll, scored, parts, diverged = 0.0, 0, [], []
    for start in range(0, count, batch_size):
        batch = windows[start:start + batch_size]
        logits = decoder.logits(batch)
        nll += F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1),
                               reduction="sum").item()
        scored += batch[:, 1:].numel()
        for row, ids in zip(logits, batch, strict=True):  # a window at a time: a vocabulary-wide copy of one
            logp = torch.log_softmax(row[:-1].float(), dim=-1)
            if keep:
                parts.append(summarize(logp, ids[1:]))
                if reference is None:  # the reference against itself: zero, by the same arithmetic
                    diverged.append(divergence_parts(logp, ids[1:], parts[-1]))
            elif reference is not None and int(reference["top_ids"].max()) >= logp.shape[-1]:
                reference, diverged, reason = None, [], (
                    f"the reference's tokens go up to {int(reference['top_ids'].max())}, this model's vocabulary "
                    f"has {logp.shape[-1]}: their distributions cannot be compared")
            elif reference is not None:
                at = len(diverged) * (context - 1)  # the reference's rows of this window
                diverged.append(divergence_parts(logp, ids[1:], {k: v[at:at + context - 1] for k, v in reference.items()}))
        del logits
    out = {"perplexity": math.exp(nll / scored), "context": context, "windows": count, "tokens_scored": scored,
           "split": split, "how": "non-overlapping windows, each scored from its own start"}
    if keep:
        out["summary"] = {k: torch.cat([p[k] for p in parts]).numpy() for k in parts[0]}
    if diverged:
        out["divergence"] = divergence(diverged)
    elif reason:
        out["divergence_reason"] = reason
    return out


def summarize(logp: Any, targets: Any) -> dict:
    """What a later variant's divergence needs of a reference's log-probabilities (positions x
    vocabulary) at every scored position: the KLD_TOP most likely tokens and their
    log-probabilities, and the log-probability of the token that came next in the text."""
    import torch

    top = torch.topk(logp, min(KLD_TOP, logp.shape[-1]), dim=-1, sorted=True)
    return {"top_ids": top.indices.to(torch.int32), "top_logp": top.values,
            "target_logp": logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)}


def divergence_parts(logp: Any, targets: Any, reference: dict) -> dict:
    """Per position of one window: the KL divergence of this model's next-token distribution from
    the reference's, KL(P_ref || Q) = sum_v p(v) log(p(v)/q(v)), over the reference's KLD_TOP most
    likely tokens and the rest of the vocabulary as one more outcome (its probability 1 - the
    kept ones', on each side): a lower bound of the full sum, close to it where the rest holds
    little of the reference's probability (`tail`, reported); whether both rank the same token
    first; and the change in the probability of the token that came next. On SmolLM2 (49,152
    tokens; 1,020 positions of pydoc text) the rest held 1.2 % of the reference's probability, and
    the bound was 97.6-98.4 % of the full sum for bf16, torchao int8 and int4 weights (93-95 %
    with 256 tokens kept, 99.5 % with 4,096); keeping 1,024 tokens costs 8 KiB per position."""
    import torch

    ids = torch.as_tensor(reference["top_ids"]).long()
    p_logp = torch.as_tensor(reference["top_logp"]).double()
    q_logp = logp.gather(-1, ids).double()
    p_top = p_logp.exp()
    p_rest = (1 - p_top.sum(-1)).clamp(min=0.0)
    q_rest = (1 - q_logp.exp().sum(-1)).clamp(min=1e-30)
    rest = torch.where(p_rest > 0, p_rest * (p_rest.clamp(min=1e-30).log() - q_rest.log()), torch.zeros_like(p_rest))
    kl = ((p_top * (p_logp - q_logp)).sum(-1) + rest).clamp(min=0.0)  # float rounding can go below 0
    same = logp.argmax(-1) == ids[:, 0]
    q_target = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1).double().exp()
    delta_p = q_target - torch.as_tensor(reference["target_logp"]).double().exp()
    return {"kl": kl, "same": same.double(), "delta_p": delta_p, "tail": p_rest, "top_k": ids.shape[-1]}


def divergence(windows: list[dict]) -> dict:
    """Teacher-forced fidelity over every scored position, as llama.cpp's perplexity tool reports
    it with --kl-divergence: the mean KL divergence with its standard error, its median, 90/95/99th
    percentiles and largest value; the share of positions where both models rank the same token
    first; the mean change in the probability of the token that came next. Standard errors come
    from the spread of the windows' means (positions within a window are not independent; one
    window: none)."""
    import numpy as np

    def flat(name: str) -> Any:
        return np.concatenate([w[name].numpy() for w in windows])

    def mean_se(name: str) -> tuple[float, float | None]:
        means = np.array([float(w[name].mean()) for w in windows])
        sizes = np.array([len(w[name]) for w in windows])
        mean = float((means * sizes).sum() / sizes.sum())
        return mean, (float(means.std(ddof=1) / np.sqrt(len(means))) if len(means) > 1 else None)

    kl = flat("kl")
    kld, kld_se = mean_se("kl")
    top1, top1_se = mean_se("same")
    delta, delta_se = mean_se("delta_p")
    return {"kld_mean": kld, "kld_mean_se": kld_se, "kld_median": float(np.median(kl)),
            "kld_p90": float(np.percentile(kl, 90)), "kld_p95": float(np.percentile(kl, 95)),
            "kld_p99": float(np.percentile(kl, 99)), "kld_max": float(kl.max()),
            "top1_agreement": top1, "top1_agreement_se": top1_se, "delta_p_mean": delta, "delta_p_mean_se": delta_se,
            "kld_positions": len(kl), "kld_windows": len(windows), "kld_top_k": windows[0]["top_k"],
            "kld_reference_tail": float(flat("tail").mean())}


def greedy_fidelity(tokens: Any, reference: Any) -> dict:
    """How closely greedy tokens (prompts x new tokens) follow the reference's: the share of
    positions with the same token, and where each sequence first differs (its length if never)."""
    import numpy as np

    same = tokens == reference
    first = [int(np.argmin(row)) if not row.all() else len(row) for row in same]
    return {"greedy_agreement": float(same.mean()), "first_divergence_mean": float(np.mean(first)),
            "identical_sequences": int(sum(row.all() for row in same)), "prompts": int(tokens.shape[0]),
            "new_tokens": int(tokens.shape[1])}
