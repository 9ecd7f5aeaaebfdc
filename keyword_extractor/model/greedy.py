"""Greedy decoding for BART-family models, with the output layer computed only for the tokens a row may write.

Why not `generate`: keyword lists are short and a decoder step of a small model is mostly fixed cost,
so `generate`'s per-step bookkeeping (input preparation, keyword-argument updates, processor and
stopping-criteria lists) is a measurable share of every step. And under grounded decoding a row may
only write tokens found in its question: the output layer, the largest single matrix of a decoder step
(vocabulary × d_model), is then multiplied for the union of those tokens over the batch, not for the
whole vocabulary. benchmarks/README.md has the figures.

Only what greedy decoding of these models uses is implemented: the decoder start token, `</s>`, the pad
token for rows that ended, forced BOS/EOS, `suppress_tokens`, `begin_suppress_tokens` and
`exponential_decay_length_penalty`. For a generation config that sets anything else that changes greedy
answers (repetition penalty, n-gram blocking, minimum length, ...) `GreedyDecoder.for_model` returns
None with the reason, and callers use `generate`. Answers equal `generate`'s token for token
(tests/test_greedy.py compares them), down to its choice of token 0 for a row whose every token is
masked out.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, PreTrainedModel

from keyword_extractor.model.grounded import GroundedKeywordsProcessor
from keyword_extractor.model.int8_linear import RowwiseInt8Linear

# Generation settings this decoder honours, and settings that do not change greedy answers.
HONOURED = frozenset(
    {
        "decoder_start_token_id",
        "eos_token_id",
        "pad_token_id",
        "bos_token_id",
        "forced_bos_token_id",
        "forced_eos_token_id",
        "suppress_tokens",
        "begin_suppress_tokens",
        "exponential_decay_length_penalty",
        "max_new_tokens",
        "max_length",
    }
)
NO_EFFECT_ON_GREEDY = frozenset(
    {
        "_from_model_config",
        "transformers_version",
        "num_beams",  # callers ask for greedy explicitly
        "do_sample",  # ditto: sampling settings below only apply when sampling
        "temperature",
        "top_k",
        "top_p",
        "typical_p",
        "min_p",
        "epsilon_cutoff",
        "eta_cutoff",
        "early_stopping",  # beam search only
        "length_penalty",
        "num_beam_groups",
        "num_return_sequences",
        "use_cache",
        "output_attentions",
        "output_hidden_states",
        "output_scores",
        "output_logits",
        "return_dict_in_generate",
        "renormalize_logits",  # log-softmax keeps the argmax
    }
)
# Values with which a setting that greedy would have to honour is switched off.
NEUTRAL = {
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "min_length": 0,
    "min_new_tokens": 0,
    "diversity_penalty": 0.0,
    "guidance_scale": 1.0,
    "remove_invalid_values": False,
}


def unsupported_settings(config: GenerationConfig) -> list[str]:
    """Settings of `config` that change greedy answers and that `GreedyDecoder` does not implement."""
    found = []
    for name, value in config.to_diff_dict().items():
        if name in HONOURED or name in NO_EFFECT_ON_GREEDY or value is None:
            continue
        if name in NEUTRAL and value == NEUTRAL[name] and type(value) is type(NEUTRAL[name]):
            continue
        found.append(name)
    for name in ("eos_token_id", "forced_eos_token_id", "forced_bos_token_id"):
        if isinstance(getattr(config, name, None), (list, tuple)):
            found.append(f"{name} (a list)")
    return found


def _token_mask(token_ids: list[int] | None, vocab_size: int) -> torch.Tensor | None:
    if not token_ids:
        return None
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    mask[[t for t in token_ids if 0 <= t < vocab_size]] = True
    return mask


@dataclass
class GreedyDecoder:
    """Decodes batches with one model; build it with `for_model`, which checks that the model's settings fit."""

    model: PreTrainedModel
    decoder_start_token_id: int
    eos_token_id: int
    pad_token_id: int
    forced_bos_token_id: int | None
    forced_eos_token_id: int | None
    suppressed: torch.Tensor | None  # bool per vocabulary entry, on the model's device
    suppressed_first: torch.Tensor | None  # only for the first generated token
    length_penalty: tuple[int, float] | None  # (start, factor) of exponential_decay_length_penalty
    cache_argument: str  # what this transformers version calls the decoder's cache argument

    @classmethod
    def for_model(cls, model: PreTrainedModel) -> tuple[GreedyDecoder | None, str]:
        """(decoder, "") when greedy decoding of `model` can skip `generate`, else (None, why not)."""
        config = model.generation_config
        if not model.config.is_encoder_decoder:
            return None, "the model is not an encoder-decoder"
        unsupported = unsupported_settings(config)
        if unsupported:
            return None, f"its generation config sets {', '.join(sorted(unsupported))}"
        parameters = inspect.signature(model.get_decoder().forward).parameters
        cache_argument = next((name for name in ("cache", "past_key_values") if name in parameters), None)
        if cache_argument is None:
            return None, "this transformers version's decoder takes no cache argument"
        start = config.decoder_start_token_id
        if start is None or config.eos_token_id is None:
            return None, "the generation config names no decoder start token or no </s>"
        vocab_size = model.get_output_embeddings().out_features
        penalty = config.exponential_decay_length_penalty
        device = model.device

        def on_device(mask: torch.Tensor | None) -> torch.Tensor | None:
            return None if mask is None else mask.to(device)

        decoder = cls(
            model=model,
            decoder_start_token_id=start,
            eos_token_id=config.eos_token_id,
            pad_token_id=config.eos_token_id if config.pad_token_id is None else config.pad_token_id,
            forced_bos_token_id=config.forced_bos_token_id,
            forced_eos_token_id=config.forced_eos_token_id,
            suppressed=on_device(_token_mask(config.suppress_tokens, vocab_size)),
            suppressed_first=on_device(_token_mask(config.begin_suppress_tokens, vocab_size)),
            length_penalty=None if penalty is None else (int(penalty[0]), float(penalty[1])),
            cache_argument=cache_argument,
        )
        return decoder, ""

    def decode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        max_new_tokens: int,
        grounded: GroundedKeywordsProcessor | None = None,
    ) -> torch.Tensor:
        """Token ids per row, the decoder start token first (as `generate` returns them)."""
        model = self.model
        batch = input_ids.shape[0]
        device = input_ids.device
        encoded = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        decoder = model.get_decoder()
        written = torch.full((batch, 1), self.decoder_start_token_id, dtype=torch.long, device=device)
        ended = torch.zeros(batch, dtype=torch.bool, device=device)
        cache = None
        for step in range(max_new_tokens):
            output = decoder(
                input_ids=written[:, -1:],
                encoder_hidden_states=encoded,
                encoder_attention_mask=attention_mask,
                use_cache=True,
                **{self.cache_argument: cache},
            )
            cache = output[self.cache_argument]
            forced = self._forced_token(step, max_new_tokens)
            if forced is not None:
                next_tokens = self._choose_forced(forced, written, step, grounded)
            else:
                next_tokens = self._choose(output.last_hidden_state[:, -1], written, step, grounded)
            next_tokens = next_tokens.masked_fill(ended, self.pad_token_id)
            written = torch.cat([written, next_tokens[:, None]], dim=1)
            ended |= next_tokens == self.eos_token_id
            if bool(ended.all()):
                break
        return written

    def _forced_token(self, step: int, max_new_tokens: int) -> int | None:
        if step == max_new_tokens - 1 and self.forced_eos_token_id is not None:
            return self.forced_eos_token_id
        if step == 0 and self.forced_bos_token_id is not None:
            return self.forced_bos_token_id
        return None

    def _suppressed(self, step: int) -> torch.Tensor | None:
        first_free_step = 0 if self.forced_bos_token_id is None else 1  # as `generate` counts "begin"
        if step == first_free_step and self.suppressed_first is not None:
            return self.suppressed_first if self.suppressed is None else self.suppressed | self.suppressed_first
        return self.suppressed

    def _choose_forced(
        self, forced: int, written: torch.Tensor, step: int, grounded: GroundedKeywordsProcessor | None
    ) -> torch.Tensor:
        """A forced step scores nothing but the forced token, which the other masks may still rule out."""
        scores = torch.full((written.shape[0], self.vocab_size), float("-inf"), device=written.device)
        scores[:, forced] = 0.0
        return self._masked(scores, written, step, grounded).argmax(dim=-1)

    @property
    def vocab_size(self) -> int:
        return self.model.get_output_embeddings().out_features

    def _masked(
        self, scores: torch.Tensor, written: torch.Tensor, step: int, grounded: GroundedKeywordsProcessor | None
    ) -> torch.Tensor:
        """Scores of the whole vocabulary after the length penalty, suppressed tokens and grounding, in that order."""
        scores = self._penalise_length(scores, written.shape[1], self.eos_token_id)
        suppressed = self._suppressed(step)
        if suppressed is not None:
            scores = scores.masked_fill(suppressed, float("-inf"))
        return scores if grounded is None else grounded(written, scores)

    def _choose(
        self, hidden: torch.Tensor, written: torch.Tensor, step: int, grounded: GroundedKeywordsProcessor | None
    ) -> torch.Tensor:
        head = self.model.get_output_embeddings()
        if grounded is None or not isinstance(head, (torch.nn.Linear, RowwiseInt8Linear)):
            return self._masked(self._logits(hidden, head, None), written, step, grounded).argmax(dim=-1)
        allowed = grounded.allowed_tokens(written)
        return self._choose_among_allowed(hidden, head, allowed, self._suppressed(step), written.shape[1])

    def _penalise_length(self, scores: torch.Tensor, length: int, eos_column: int) -> torch.Tensor:
        """exponential_decay_length_penalty: </s> gains |score| * (factor^k - 1), k steps after its start."""
        if self.length_penalty is None:
            return scores
        start, factor = self.length_penalty
        start += 1  # counted after the decoder start token, as `generate` counts it
        if length <= start:
            return scores
        eos = scores[:, eos_column]
        penalty = (eos.abs() * (pow(factor, length - start) - 1)).masked_fill(~torch.isfinite(eos), 0.0)
        penalties = torch.zeros_like(scores)
        penalties[:, eos_column] = penalty
        return scores + penalties

    def _logits(self, hidden: torch.Tensor, head: torch.nn.Module, tokens: torch.Tensor | None) -> torch.Tensor:
        """Output-layer scores in float32, of all tokens or of `tokens` only (same weights, same arithmetic)."""
        bias = getattr(self.model, "final_logits_bias", None)
        if tokens is None:
            logits = head(hidden)
            if bias is not None:
                logits = logits + bias.to(logits.device)
            return logits.float()
        if isinstance(head, RowwiseInt8Linear):
            logits = head.forward_outputs(hidden, tokens)
        else:
            logits = torch.nn.functional.linear(
                hidden, head.weight.index_select(0, tokens), None if head.bias is None else head.bias[tokens]
            )
        if bias is not None:
            logits = logits + bias[0, tokens]
        return logits.float()

    def _choose_among_allowed(
        self,
        hidden: torch.Tensor,
        head: torch.nn.Linear | RowwiseInt8Linear,
        allowed: list[list[int] | None],
        suppressed: torch.Tensor | None,
        length: int,
    ) -> torch.Tensor:
        """Argmax over each row's allowed tokens, scoring only the union of them over the batch.

        A row left with no token (all suppressed) gets token 0, as `generate`'s argmax over all -inf gives.
        """
        device = hidden.device
        rows = [row for row, tokens in enumerate(allowed) if tokens]
        choice = torch.zeros(len(allowed), dtype=torch.long, device=device)
        if not rows:
            return choice  # every row ended: what they get is replaced by padding
        tokens = torch.tensor([t for row in rows for t in allowed[row]], dtype=torch.long, device=device)
        row_of = torch.repeat_interleave(
            torch.tensor(rows, device=device), torch.tensor([len(allowed[row]) for row in rows], device=device)
        )
        if suppressed is not None:
            keep = ~suppressed[tokens]
            tokens, row_of = tokens[keep], row_of[keep]
            if not len(tokens):
                return choice
        union = torch.unique(tokens)  # sorted
        scores = torch.full((len(allowed), len(union)), float("-inf"), device=device)
        scores[row_of, torch.searchsorted(union, tokens)] = 0.0
        logits = self._logits(hidden, head, union)
        eos_column = torch.searchsorted(union, self.eos_token_id)
        if self.length_penalty is not None and eos_column < len(union) and union[eos_column] == self.eos_token_id:
            logits = self._penalise_length(logits, length, int(eos_column))
        scores += logits
        has_choice = torch.zeros(len(allowed), dtype=torch.bool, device=device)
        has_choice[row_of] = True
        return torch.where(has_choice, union[scores.argmax(dim=-1)], choice)
