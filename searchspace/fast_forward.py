"""The eval-mode forward of a derived student: the training forward's function, fewer kernels.

A small student's latency is op dispatch, not arithmetic (the bench's SST-2 student: 2.0M FLOPs
per example). This path keeps every result of the training forward (up to float rounding; a
test compares them on random genotypes) and cuts the kernel launches:

- every state is zero at its padding (the embedding and every op mask their output), so ops
  need not mask their input again;
- identity and average pooling are linear: a node is kept as a linear combination of tensors
  and of average pools of tensors, and only materialised where a convolution or max pooling
  reads it, so a cell of them costs one pooling per mask and a few fused adds;
- a max pooling of the same input runs once;
- the convolutions reading one state share its ReLU and padding, and those of one shape one
  matrix product (the shifted copies against their kernels side by side) and one LayerNorm;
- the pooling windows' real-token counts and the mean-pooling counts are computed once per mask
  per forward, the softmax weights once per parameter update (as floats, cached);
- a single-sentence input (the same tensors given as sentence a and b) is embedded once, and
  the head's masked means of cells with one mask share one sum;
- a siamese pair runs as one single-sentence batch of 2B rows (a's, then b's), as the training
  forward does; the mixed vectors are split into u and v only for the head's pair features.

Traced for ONNX export, the same code keeps the weights as tensors (0-d coefficients).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from searchspace.genotype import edge_key
from searchspace.pair_encoding import is_single, split_rows, stack_rows
from searchspace.primitives import POOL_KERNEL, AvgPool, Conv, Identity, MaxPool, Zero


class _MaskCache:
    """Per-forward values that depend only on a padding mask (keyed by the mask object)."""

    def __init__(self) -> None:
        self._pool_scale: dict[int, torch.Tensor] = {}
        self._mean_scale: dict[int, torch.Tensor] = {}
        self._union: dict[tuple[int, int], torch.Tensor] = {}
        self._unpadded: dict[int, bool] = {}
        self._float_mask: dict[int, torch.Tensor] = {}
        self._keep: list[torch.Tensor] = []  # ids stay unique while their tensors live

    def pool_scale(self, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, T, 1): mask / (real tokens in the window), as ``AvgPool`` divides."""
        key = id(mask)
        if key not in self._pool_scale:
            m = mask.unsqueeze(1).to(dtype)
            count = nn.functional.avg_pool1d(m, POOL_KERNEL, 1, POOL_KERNEL // 2)
            self._pool_scale[key] = (m / count.clamp_min(1e-6)).transpose(1, 2)
            self._keep.append(mask)
        return self._pool_scale[key]

    def mean_scale(self, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, 1): 1 / real tokens, as ``masked_mean`` divides."""
        key = id(mask)
        if key not in self._mean_scale:
            count = mask.to(dtype).sum(dim=1, keepdim=True).clamp_min(1.0)
            self._mean_scale[key] = count.reciprocal()
            self._keep.append(mask)
        return self._mean_scale[key]

    def unpadded(self, mask: torch.Tensor) -> bool:
        """No padding at all (a batch of one, or of equal lengths): max pooling needs no
        -inf fill. Traced graphs cannot branch on data, so they always fill."""
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return False
        key = id(mask)
        if key not in self._unpadded:
            self._unpadded[key] = bool(mask.all())
            self._keep.append(mask)
        return self._unpadded[key]

    def float_mask(self, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, T, 1) in ``dtype``, to zero a state's padding."""
        key = id(mask)
        if key not in self._float_mask:
            self._float_mask[key] = mask.unsqueeze(-1).to(dtype)
            self._keep.append(mask)
        return self._float_mask[key]

    def union(self, m0: torch.Tensor, m1: torch.Tensor) -> torch.Tensor:
        if m0 is m1:
            return m0
        key = (id(m0), id(m1))
        if key not in self._union:
            self._union[key] = torch.maximum(m0, m1)
            self._keep.extend((m0, m1))
        return self._union[key]

    def mean(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # states are zero at padding, so the masked sum is the plain sum.
        return states.sum(dim=1) * self.mean_scale(mask, states.dtype)


def _shifted_product(padded, pad, kernel, dilation, length, weight, bias) -> torch.Tensor:
    """The "same" convolution of the (B, pad + T + pad, C) ``padded`` input as one product of
    its k shifted copies with the flattened kernels, (B, T, C_out). CPU torch runs a dilated
    conv1d on a generic slow path, about 4x a plain one at batch 1, seq 128 (8 dilated of 24
    convolutions took 6 of a student's 9 ms); the product costs what a plain one does."""
    start = pad - dilation * (kernel - 1) // 2
    shifted = torch.cat(
        [padded[:, start + i * dilation : start + i * dilation + length] for i in range(kernel)],
        dim=-1,
    )
    flat = torch.addmm(bias, shifted.reshape(-1, shifted.shape[-1]), weight)
    return flat.view(shifted.shape[0], length, -1)


def _group_kernel(convs: list[nn.Conv1d]) -> tuple[torch.Tensor, torch.Tensor]:
    """(k·C_in, g·C_out) and (g·C_out,): convolutions of one shape side by side, row i·C_in + c
    of each holding tap i of input channel c. Without gradients they are kept on the first
    module until a weight or bias changes (its version counter moves on every in-place update,
    optimiser steps and load_state_dict included)."""

    def flat() -> tuple[torch.Tensor, torch.Tensor]:
        weights = [
            c.weight.permute(2, 1, 0).reshape(c.kernel_size[0] * c.in_channels, c.out_channels)
            for c in convs
        ]
        if len(convs) == 1:
            return weights[0], convs[0].bias
        return torch.cat(weights, dim=1), torch.cat([c.bias for c in convs])

    if torch.is_grad_enabled():
        return flat()
    key = tuple((p.data_ptr(), p._version) for c in convs for p in (c.weight, c.bias))
    store = convs[0].__dict__.setdefault("_group_kernels", {})
    names = tuple(id(c) for c in convs)
    cached = store.get(names)
    if cached is None or cached[0] != key:
        weight, bias = flat()
        cached = (key, weight.detach().contiguous(), bias.detach().contiguous())
        store[names] = cached
    return cached[1], cached[2]


def _convolutions_of(
    x: torch.Tensor, mask: torch.Tensor, convs: list[Conv], cache: _MaskCache
) -> dict[int, torch.Tensor]:
    """Every convolution edge reading one state, by id(op): one ReLU and one padding for all of
    them, and one product and one normalisation per shape (kernel, dilation), the edges of a
    shape side by side in the product's columns. The per-op code ran seven kernels per edge;
    a small student's latency is their count."""
    h = torch.relu(x)
    pad = max(op.conv.padding[0] for op in convs)
    padded = nn.functional.pad(h, (0, 0, pad, pad))
    shapes: dict[tuple[int, int], list[Conv]] = {}
    for op in convs:
        shapes.setdefault((op.kernel_size, op.dilation), []).append(op)
    width = x.shape[-1]
    keep = None if cache.unpadded(mask) else cache.float_mask(mask, x.dtype)
    out = {}
    for (kernel, dilation), ops in shapes.items():
        weight, bias = _group_kernel([op.conv for op in ops])
        y = _shifted_product(padded, pad, kernel, dilation, x.shape[1], weight, bias)
        y = y.view(*y.shape[:2], len(ops), width)
        y = nn.functional.layer_norm(y, (width,), eps=ops[0].norm.eps)
        if keep is not None:
            y = y * keep.unsqueeze(-1)
        for index, op in enumerate(ops):
            out[id(op)] = y[:, :, index]
    return out


def _apply_op(op: nn.Module, x: torch.Tensor, mask: torch.Tensor, cache: _MaskCache):
    if isinstance(op, Identity):
        return x
    if isinstance(op, AvgPool):
        pooled = nn.functional.avg_pool1d(x.transpose(1, 2), POOL_KERNEL, 1, POOL_KERNEL // 2)
        return pooled.transpose(1, 2) * cache.pool_scale(mask, x.dtype)
    if isinstance(op, Conv):  # an ONNX export: the Conv node (onnxruntime's is fast)
        h = op.conv(torch.relu(x).transpose(1, 2)).transpose(1, 2)
        return op.norm(h) * mask.unsqueeze(-1).to(h.dtype)
    if isinstance(op, MaxPool):
        if cache.unpadded(mask):  # max_pool1d pads the sequence ends with -inf itself
            pooled = nn.functional.max_pool1d(x.transpose(1, 2), POOL_KERNEL, 1, POOL_KERNEL // 2)
            return pooled.transpose(1, 2)
        return op(x, mask)
    raise TypeError(f"no eval path for {type(op).__name__}")


def _incoming(cell, target: int):
    """(source, op) of the edges into ``target`` that contribute (not ``zero``)."""
    for source, t, _ in cell.kept:
        op = cell.edges[edge_key(source, target)] if t == target else None
        if op is not None and not isinstance(op, Zero):
            yield source, op


def _softmax_floats(logits: torch.Tensor, cache: dict) -> list[float]:
    """softmax(logits) as Python floats, recomputed only when the parameter changed (an
    optimiser step or a load bumps its version counter)."""
    key = (id(logits), logits.data_ptr(), logits._version)
    if key not in cache:
        if len(cache) > 1024:
            cache.clear()
        cache[key] = torch.softmax(logits.detach(), dim=0).tolist()
    return cache[key]


Coefficient = float | torch.Tensor  # floats in eager mode, 0-d tensors in a traced graph


def _scale(tensor: torch.Tensor, coef: Coefficient) -> torch.Tensor:
    return tensor if isinstance(coef, float) and coef == 1.0 else tensor * coef


def _axpy(total: torch.Tensor, tensor: torch.Tensor, coef: Coefficient) -> torch.Tensor:
    """total + coef * tensor: one fused kernel for a float coefficient."""
    if isinstance(coef, float):
        return torch.add(total, tensor, alpha=coef)
    return total + tensor * coef


class _Combination:
    """A node as sum(coef * tensor) + sum over masks of AvgPool_mask(sum(coef * tensor)):
    identity and average pooling are linear, so whole cells of them fold into a few kernels."""

    def __init__(self) -> None:
        self.direct: dict[int, list] = {}  # id(tensor) -> [tensor, coef]
        self.pooled: dict[int, list] = {}  # id(mask) -> [mask, {id(tensor): [tensor, coef]}]

    @staticmethod
    def _accumulate(entries: dict, tensor: torch.Tensor, coef: Coefficient) -> None:
        if id(tensor) in entries:
            entries[id(tensor)][1] = entries[id(tensor)][1] + coef
        else:
            entries[id(tensor)] = [tensor, coef]

    def add_tensor(self, tensor: torch.Tensor, coef: Coefficient) -> None:
        self._accumulate(self.direct, tensor, coef)

    def add_pool(self, tensor: torch.Tensor, mask: torch.Tensor, coef: Coefficient) -> None:
        self._accumulate(self.pooled.setdefault(id(mask), [mask, {}])[1], tensor, coef)

    def add(self, other: _Combination, coef: Coefficient) -> None:
        for tensor, c in other.direct.values():
            self.add_tensor(tensor, c * coef)
        for mask, group in other.pooled.values():
            for tensor, c in group.values():
                self.add_pool(tensor, mask, c * coef)

    def evaluate(self, like: torch.Tensor, cache: _MaskCache) -> torch.Tensor:
        parts = []
        for mask, group in self.pooled.values():
            inner = _linear(list(group.values()))
            pooled = nn.functional.avg_pool1d(
                inner.transpose(1, 2), POOL_KERNEL, 1, POOL_KERNEL // 2
            ).transpose(1, 2)
            parts.append(pooled * cache.pool_scale(mask, pooled.dtype))
        if not parts:
            return _linear(list(self.direct.values())) if self.direct else torch.zeros_like(like)
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        for tensor, coef in self.direct.values():
            total = _axpy(total, tensor, coef)
        return total


def _linear(terms: list[list]) -> torch.Tensor:
    (first, c0), *rest = terms
    total = _scale(first, c0)
    for tensor, coef in rest:
        total = _axpy(total, tensor, coef)
    return total


def cell_forward(cell, s0, m0, s1, m1, cache: _MaskCache, weights: list[Coefficient]):
    """``DerivedCell.forward`` in eval mode: nodes kept as linear combinations and
    materialised only where a convolution or max pooling reads them."""
    node_mask = cache.union(m0, m1)
    combos = [_Combination(), _Combination()]
    combos[0].add_tensor(s0, 1.0)
    combos[1].add_tensor(s1, 1.0)
    values: list[torch.Tensor | None] = [s0, s1]
    masks = [m0, m1]
    results: dict[tuple[int, int, str], torch.Tensor] = {}
    exporting = torch.onnx.is_in_onnx_export()
    conv_edges: dict[int, list[Conv]] = {}  # source -> its convolution edges, in one pass
    for source, target, _ in cell.kept:
        op = cell.edges[edge_key(source, target)]
        if isinstance(op, Conv):
            conv_edges.setdefault(source, []).append(op)
    alive: list[torch.Tensor] = []  # ids used as keys must not be reused by new tensors

    def value(index: int) -> torch.Tensor:
        if values[index] is None:
            values[index] = combos[index].evaluate(s1, cache)
            alive.append(values[index])
        return values[index]

    for target in range(2, 2 + cell.nodes_per_cell):
        combo = _Combination()
        for source, op in _incoming(cell, target):
            if isinstance(op, Identity):
                combo.add(combos[source], 1.0)
            elif isinstance(op, AvgPool):
                combo.add_pool(value(source), masks[source], 1.0)
            else:
                x, m = value(source), masks[source]
                # A parameter-free max pool of one input runs once; the mask is part of the
                # key because a node equal to an input (identity) has another mask.
                key = (id(x), id(m), "max" if isinstance(op, MaxPool) else str(id(op)))
                if key not in results:
                    if isinstance(op, Conv) and not exporting:
                        convs = _convolutions_of(x, m, conv_edges[source], cache)
                        results.update(((id(x), id(m), str(k)), v) for k, v in convs.items())
                        alive.extend(convs.values())
                    else:
                        results[key] = _apply_op(op, x, m, cache)
                        alive.append(results[key])
                combo.add_tensor(results[key], 1.0)
        combos.append(combo)
        values.append(None)
        masks.append(node_mask)
    output = _Combination()
    for index, weight in enumerate(weights):
        output.add(combos[2 + index], weight)
    return output.evaluate(s1, cache), node_mask


def student_forward(student, input_ids_a, attention_mask_a, input_ids_b, attention_mask_b):
    """``DerivedStudent.forward`` in eval mode (see the module docstring)."""
    cache = _MaskCache()
    siamese = student.config.siamese
    single = is_single(input_ids_a, attention_mask_a, input_ids_b, attention_mask_b)
    if siamese:
        input_ids_a, attention_mask_a = stack_rows(
            input_ids_a, attention_mask_a, input_ids_b, attention_mask_b
        )
        input_ids_b, attention_mask_b = input_ids_a, attention_mask_a
    s_a = student.embedding(input_ids_a, attention_mask_a)
    same = input_ids_b is input_ids_a and attention_mask_b is attention_mask_a
    s_b = s_a if same else student.embedding(input_ids_b, attention_mask_b)
    head = student.head
    depth = student.genotype.num_cells
    tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
    if tracing:
        # An exported graph keeps the weights as tensors (parameters there, not values known
        # at trace time); the runtime folds their softmax as constants.

        def softmax(logits: torch.Tensor) -> list[Coefficient]:
            return list(torch.softmax(logits, dim=0).unbind(0))

    else:
        floats = student.__dict__.setdefault("_softmax_floats", {})

        def softmax(logits: torch.Tensor) -> list[Coefficient]:
            return _softmax_floats(logits, floats)

    layer_weights = softmax(head.layer_logits[str(depth)])
    cell_weights = [softmax(cell.output_logits) for cell in student.cells]
    table = student.__dict__.get(LENGTH_TABLE) if tracing else None
    if same and table is not None:
        # An export of a linear student (``length_table``): the weights of each row's length.
        lengths = attention_mask_a.sum(dim=1).long().clamp_min(1)
        weights = table.index_select(0, lengths - 1)[:, : s_a.shape[1]]
        mixed = torch.bmm(weights.unsqueeze(1).to(s_a.dtype), s_a).squeeze(1)
    elif same and not tracing and is_linear(student):
        weights = token_weights(student, attention_mask_a, layer_weights, cell_weights, s_a.dtype)
        mixed = torch.bmm(weights.unsqueeze(1), s_a).squeeze(1)
    else:
        if same:
            pooled_embedding = cache.mean(s_a, attention_mask_a)
        else:
            pooled_embedding = (
                cache.mean(s_a, attention_mask_a) + cache.mean(s_b, attention_mask_b)
            ) * 0.5
        mixed = _mixed(
            student, cache, s_a, attention_mask_a, s_b, attention_mask_b, pooled_embedding,
            layer_weights, cell_weights,
        )  # fmt: skip
    if siamese:
        mixed = head.features(*split_rows(mixed, single))
    return head.linear(depth)(torch.tanh(mixed))


def _mixed(student, cache, s0, m0, s1, m1, pooled_embedding, layer_weights, cell_weights):
    """The head's mix of the embedding's and every cell's masked mean, (B, H)."""
    # Cells with one mask share one sum and one division.
    mixed_states: dict[int, list] = {}  # id(mask) -> [mask, running weighted sum of states]
    keep = []
    for index, cell in enumerate(student.cells):
        out, mask = cell_forward(cell, s0, m0, s1, m1, cache, cell_weights[index])
        keep.append(out)
        weight = layer_weights[index + 1]
        entry = mixed_states.get(id(mask))
        if entry is None:
            mixed_states[id(mask)] = [mask, _scale(out, weight)]
        else:
            entry[1] = _axpy(entry[1], out, weight)
        s0, m0, s1, m1 = s1, m1, out, mask
    mixed = _scale(pooled_embedding, layer_weights[0])
    for mask, states in mixed_states.values():
        mixed = mixed + cache.mean(states, mask)
    return mixed


# --- students whose cells are all linear ----------------------------------------------------
#
# With only identity, average pooling and zero on its edges, every cell acts on the token axis
# alone, the same way on every channel, and the head reads masked means: the mix the head
# takes is a weighted sum of the embedding's tokens, mixed = w^T E, whose weights w (B, T)
# depend on the padding mask and the architecture weights only. They are computed by the same
# code run on the identity (token t's probe is channel t) and kept per mask and weights, so a
# forward is the embedding, one batched product and the head. (Such a student is the
# bag-of-embeddings floor with position-dependent weights, which is what a collapsed search
# yields; the bench and the collapse guards say how often.)

_LINEAR_OPS = (Identity, AvgPool, Zero)
_MAX_CACHED = 256


def is_linear(student) -> bool:
    """No convolution or max pooling on any kept edge."""
    found = student.__dict__.get("_is_linear")
    if found is None:
        found = all(
            isinstance(op, _LINEAR_OPS) for cell in student.cells for op in cell.edges.values()
        )
        student.__dict__["_is_linear"] = found
    return found


def token_weights(student, mask, layer_weights, cell_weights, dtype) -> torch.Tensor:
    """w (B, T) with mixed = sum_t w[:, t] * E[:, t] for every E zero at its padding."""
    weights_key = (tuple(layer_weights), tuple(tuple(w) for w in cell_weights))
    key = (tuple(mask.shape), mask.detach().cpu().numpy().tobytes(), weights_key, dtype)
    store = student.__dict__.setdefault("_token_weights", {})
    if key not in store:
        if len(store) >= _MAX_CACHED:
            store.clear()
        store[key] = _probe(student, mask, layer_weights, cell_weights, dtype)
    return store[key]


def _probe(student, mask, layer_weights, cell_weights, dtype) -> torch.Tensor:
    batch, length = mask.shape
    eye = torch.eye(length, dtype=dtype, device=mask.device).expand(batch, length, length)
    probes = eye * mask.unsqueeze(-1).to(dtype)  # zero at padding, as an embedding is
    cache = _MaskCache()
    pooled = cache.mean(probes, mask)
    return _mixed(student, cache, probes, mask, probes, mask, pooled, layer_weights, cell_weights)


LENGTH_TABLE = "_length_table"


@contextlib.contextmanager
def length_table(student, chunk: int = 32):
    """While exporting a linear student: row L - 1 of a (max_positions, max_positions) table
    holds the token weights of a right-padded input of L real tokens (padding changes nothing,
    so they depend on L alone), and the traced graph becomes embedding, one gather of this
    table, one batched product and the head. Other students are traced as they are."""
    if not is_linear(student):
        yield
        return
    weights = student.__dict__.setdefault("_softmax_floats", {})
    depth = student.genotype.num_cells
    layer_weights = _softmax_floats(student.head.layer_logits[str(depth)], weights)
    cell_weights = [_softmax_floats(cell.output_logits, weights) for cell in student.cells]
    size = student.config.max_positions
    table = torch.zeros(size, size)
    with torch.no_grad():
        for start in range(1, size + 1, chunk):
            lengths = torch.arange(start, min(start + chunk, size + 1))
            longest = int(lengths[-1])
            mask = (torch.arange(longest)[None, :] < lengths[:, None]).long()
            rows = _probe(student, mask, layer_weights, cell_weights, torch.float32)
            table[start - 1 : start - 1 + len(lengths), :longest] = rows
    student.__dict__[LENGTH_TABLE] = table
    try:
        yield
    finally:
        del student.__dict__[LENGTH_TABLE]
