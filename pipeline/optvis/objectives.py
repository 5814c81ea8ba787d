"""Objectives: what feature visualization maximises, composable and self-describing.

An :class:`Objective` maps the captured activations of a batch to one value per item::

    objective(acts: Mapping[str, Tensor[N, C, H, W]]) -> Tensor[N]

and says which layers it needs (``.layers``, so that the forward pass can stop at the
deepest of them) and what it is (``str(o)``, a ready caption: ``"channel blocks.3.0:5"``).
Objectives compose with ``+``, ``-``, ``*`` (by a number or another objective), ``/`` by a
number and unary ``-``, as in Lucid::

    o = channel("blocks.3.0", 5) - 1e2 * diversity("blocks.3.0")

Every value is maximised. :func:`per_item` gives each item of a batch its own objective,
evaluated on that item's activations only: this is what lets one forward/backward pass
render many channels at once without mixing them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

Acts = Mapping[str, torch.Tensor]
COSSIM_FLOOR = 0.1  # Lucid: cosine similarities below this count as 0.1
COSSIM_EPS = 1e-4  # Lucid: added to both magnitudes before dividing
GRAM_EPS = 1e-10  # Lucid: epsilon of the Gram matrices' l2 normalisation


def _layer(acts: Acts, name: str) -> torch.Tensor:
    try:
        t = acts[name]
    except KeyError:
        raise KeyError(f"objective needs layer {name!r} but only {sorted(acts)} were captured") from None
    if t.dim() != 4:
        raise ValueError(f"layer {name!r}: expected activations [N, C, H, W], got {tuple(t.shape)}")
    return t


class Objective:
    """A function of a batch's activations, one value per item (``Tensor[N]``)."""

    def __init__(
        self, fn: Callable[[Acts], torch.Tensor], layers, description: str, *, compound: bool = False
    ):
        self.fn = fn
        self.layers = frozenset(layers)
        self.description = description
        self._compound = compound  # whether the description needs brackets inside a product

    def __call__(self, acts: Acts) -> torch.Tensor:
        return self.fn(acts)

    def __str__(self) -> str:
        return self.description

    def __repr__(self) -> str:
        return f"<Objective {self.description}>"

    def _bracketed(self) -> str:
        return f"({self.description})" if self._compound else self.description

    # -- arithmetic ---------------------------------------------------------------
    def __add__(self, other):
        if isinstance(other, (int, float)):
            return Objective(
                lambda acts: self(acts) + other, self.layers, f"{self} + {other:g}", compound=True
            )
        other = as_objective(other)
        text = f"{self} - {other._negated_text()}" if other._is_negative() else f"{self} + {other}"
        return Objective(
            lambda acts: self(acts) + other(acts), self.layers | other.layers, text, compound=True
        )

    def __radd__(self, other):
        if isinstance(other, (int, float)) and other == 0:
            return self  # lets sum([...]) of objectives work
        return self + other

    def __neg__(self):
        return Scaled(self, -1.0)

    def __sub__(self, other):
        return self + (-other if isinstance(other, (int, float)) else -as_objective(other))

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if isinstance(other, (int, float)):
            return Scaled(self, float(other))
        other = as_objective(other)
        return Objective(
            lambda acts: self(acts) * other(acts),
            self.layers | other.layers,
            f"{self._bracketed()} * {other._bracketed()}",
            compound=True,
        )

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        if not isinstance(other, (int, float)):
            raise TypeError("objectives divide by numbers only")
        return Scaled(self, 1.0 / other)

    def _is_negative(self) -> bool:
        return False

    def _negated_text(self) -> str:
        return (-self).description


class Scaled(Objective):
    """``factor * inner``; described as ``-channel ...`` or ``100 * diversity ...``."""

    def __init__(self, inner: Objective, factor: float):
        if isinstance(inner, Scaled):  # fold nested factors: -(-x) is x again
            inner, factor = inner.inner, inner.factor * factor
        self.inner, self.factor = inner, factor
        if factor == 1:
            text = inner.description
        elif factor == -1:
            text = f"-{inner._bracketed()}"
        else:
            text = f"{factor:g} * {inner._bracketed()}"
        super().__init__(lambda acts: factor * inner(acts), inner.layers, text)

    def _is_negative(self) -> bool:
        return self.factor < 0

    def _negated_text(self) -> str:
        return Scaled(self.inner, -self.factor).description


def as_objective(o) -> Objective:
    """An :class:`Objective`, or ``"layer:channel"`` text for a channel objective."""
    if isinstance(o, Objective):
        return o
    if isinstance(o, str) and ":" in o:
        layer, _, ch = o.rpartition(":")
        return channel(layer.strip(), int(ch))
    raise TypeError(f"not an objective: {o!r}")


# ---------------------------------------------------------------------------------
# Unit objectives. Each class can also evaluate a list of its kind at once, one per
# item, which is how per_item() avoids a Python loop over the batch.
# ---------------------------------------------------------------------------------


def _centre(t: torch.Tensor, y: int | None, x: int | None) -> tuple[int, int]:
    # Lucid's default: the centre, or the bottom-right of the central 2x2 when even.
    h, w = t.shape[-2:]
    y, x = h // 2 if y is None else y, w // 2 if x is None else x
    if not (0 <= y < h and 0 <= x < w):
        raise IndexError(f"position (y={y}, x={x}) outside the {h}x{w} activation map")
    return y, x


class Channel(Objective):
    """Mean of one channel over space (Lucid's ``channel``)."""

    def __init__(self, layer: str, channel: int):
        self.layer, self.channel = layer, int(channel)
        super().__init__(self._value, {layer}, f"channel {layer}:{self.channel}")

    def _value(self, acts):
        return _layer(acts, self.layer)[:, self.channel].mean(dim=(-2, -1))

    @staticmethod
    def stack_key(o):
        return (Channel, o.layer)

    @staticmethod
    def per_item(objs: Sequence[Channel], t: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(len(objs), device=t.device)
        chans = torch.tensor([o.channel for o in objs], device=t.device)
        return t[rows, chans].mean(dim=(-2, -1))


class Neuron(Objective):
    """One channel at one position (Lucid's ``neuron``); ``None`` means the centre."""

    def __init__(self, layer: str, channel: int, y: int | None = None, x: int | None = None):
        self.layer, self.channel, self.y, self.x = layer, int(channel), y, x
        where = "centre" if y is None and x is None else f"y={y}, x={x}"
        super().__init__(self._value, {layer}, f"neuron {layer}:{self.channel} ({where})")

    def _value(self, acts):
        t = _layer(acts, self.layer)
        y, x = _centre(t, self.y, self.x)
        return t[:, self.channel, y, x]

    @staticmethod
    def stack_key(o):
        return (Neuron, o.layer)

    @staticmethod
    def per_item(objs: Sequence[Neuron], t: torch.Tensor) -> torch.Tensor:
        where = [_centre(t, o.y, o.x) for o in objs]
        idx = lambda values: torch.tensor(values, device=t.device)  # noqa: E731
        return t[
            idx(range(len(objs))),
            idx([o.channel for o in objs]),
            idx([p[0] for p in where]),
            idx([p[1] for p in where]),
        ]


def _direction_value(t: torch.Tensor, vectors: torch.Tensor, cossim_pow: float) -> torch.Tensor:
    """``t: [N, C, H, W]``, ``vectors: [N, C]`` -> ``[N]``: Lucid's dot / cosine-power mean over space."""
    vectors = vectors.to(device=t.device, dtype=t.dtype)
    dot = torch.einsum("nchw,nc->nhw", t, vectors)
    if cossim_pow:
        cos = dot / (COSSIM_EPS + t.norm(dim=1)) / (COSSIM_EPS + vectors.norm(dim=1))[:, None, None]
        dot = dot * cos.clamp(min=COSSIM_FLOOR) ** cossim_pow
    return dot.mean(dim=(-2, -1))


class Direction(Objective):
    """Activation vectors along a direction: dot product, or dot x cosine^pow (Lucid)."""

    def __init__(
        self, layer: str, vector, y: int | None = None, x: int | None = None, cossim_pow: float = 0.0
    ):
        vector = torch.as_tensor(vector, dtype=torch.float32).detach()
        if vector.dim() != 1:
            raise ValueError(f"direction vector must be 1-D [C], got shape {tuple(vector.shape)}")
        if (y is None) != (x is None):
            raise ValueError("direction: give both y and x, or neither (mean over space)")
        self.layer, self.vector, self.y, self.x = layer, vector, y, x
        self.cossim_pow = float(cossim_pow)
        where = "" if y is None else f" at y={y}, x={x}"
        how = f", cossim^{self.cossim_pow:g}" if self.cossim_pow else ""
        super().__init__(self._value, {layer}, f"direction {layer}[{vector.numel()}]{where}{how}")

    def _select(self, t):
        if t.shape[1] != self.vector.numel():
            raise ValueError(
                f"direction for {self.layer}: vector has {self.vector.numel()} "
                f"entries but the layer has {t.shape[1]} channels"
            )
        return t if self.y is None else t[:, :, self.y : self.y + 1, self.x : self.x + 1]

    def _value(self, acts):
        t = self._select(_layer(acts, self.layer))
        return _direction_value(t, self.vector.expand(t.shape[0], -1), self.cossim_pow)

    @staticmethod
    def stack_key(o):
        return (Direction, o.layer, o.cossim_pow, o.y is None)

    @staticmethod
    def per_item(objs: Sequence[Direction], t: torch.Tensor) -> torch.Tensor:
        if objs[0].y is None:
            selected = objs[0]._select(t)
        else:
            selected = torch.stack([o._select(t[i : i + 1])[0] for i, o in enumerate(objs)])
        vectors = torch.stack([o.vector for o in objs])
        return _direction_value(selected, vectors, objs[0].cossim_pow)


def channel(layer: str, channel: int) -> Objective:
    """Mean activation of ``channel`` of ``layer`` over space, per item: ``Tensor[N]``."""
    return Channel(layer, channel)


def neuron(layer: str, channel: int, y: int | None = None, x: int | None = None) -> Objective:
    """Activation of ``channel`` at ``(y, x)`` (default: the centre), per item."""
    return Neuron(layer, channel, y, x)


def direction(
    layer: str, vector, *, y: int | None = None, x: int | None = None, cossim_pow: float = 0.0
) -> Objective:
    """Alignment of the activation vectors with ``vector: Tensor[C]``, per item.

    At ``(y, x)``, or averaged over every position when both are None. ``cossim_pow=0``
    is the dot product; otherwise the dot product times ``max(0.1, cosine) ** cossim_pow``,
    which rewards the direction more than sheer magnitude (activation atlas uses 2).
    """
    return Direction(layer, vector, y, x, cossim_pow)


def diversity(layer: str, group_size: int | None = None) -> Objective:
    """Lucid's diversity term: how alike the items' styles are; subtract it to diversify.

    Each item's Gram matrix of ``layer`` (channels x channels, over positions) is
    l2-normalised; item i's value is the sum of its cosine similarities to the other
    items of its group divided by the group size, so the values of a group sum to
    Lucid's ``diversity``. As in Lucid the term measures *similarity*: use it as
    ``channel(...) - 1e2 * diversity(...)``; ``-diversity`` is the negative pairwise
    cosine, which rises as the images grow apart.

    ``group_size``: compare only within consecutive groups of that many items (several
    channels' diverse sets in one batch); default: the whole batch is one group.
    """

    def value(acts):
        t = _layer(acts, layer)
        n = t.shape[0]
        size = n if group_size is None else int(group_size)
        if size < 1 or n % size:
            raise ValueError(f"diversity {layer}: batch of {n} is not a whole number of groups of {size}")
        flat = t.flatten(2)  # [N, C, HW]
        grams = flat @ flat.transpose(1, 2)  # [N, C, C]
        norms = grams.pow(2).sum(dim=(1, 2), keepdim=True).clamp(min=GRAM_EPS).sqrt()
        grams = (grams / norms).flatten(1)  # [N, C*C], unit length
        sims = grams @ grams.T  # [N, N] cosine similarities
        group = torch.arange(n, device=t.device) // size
        others = (group[:, None] == group[None, :]) & ~torch.eye(n, dtype=torch.bool, device=t.device)
        return (sims * others).sum(dim=1) / size

    groups = "" if group_size is None else f" (groups of {group_size})"
    return Objective(value, {layer}, f"diversity {layer}{groups}")


def per_item(objectives: Sequence[Objective]) -> Objective:
    """Item i of the batch optimises ``objectives[i]``, on item i's activations only.

    The batch must have exactly ``len(objectives)`` items. Channel, neuron and
    direction objectives are evaluated together with one gather per layer; anything
    else (sums, products, ...) is evaluated item by item on a one-item slice.
    """
    objs = [as_objective(o) for o in objectives]
    if not objs:
        raise ValueError("per_item needs at least one objective")
    layers = frozenset().union(*(o.layers for o in objs))
    groups: dict[tuple, list[int]] = {}
    for i, o in enumerate(objs):
        key = type(o).stack_key(o) if type(o) in (Channel, Neuron, Direction) else ("single", i)
        groups.setdefault(key, []).append(i)

    order = [i for items in groups.values() for i in items]  # item of each value, as computed
    everyone = list(range(len(objs)))

    def value(acts):
        n = next(iter(acts.values())).shape[0] if acts else 0
        if n != len(objs):
            raise ValueError(f"per_item has {len(objs)} objectives but the batch has {n} items")
        parts = []
        for key, items in groups.items():
            if key[0] == "single":
                i = items[0]
                parts.append(objs[i]({k: v[i : i + 1] for k, v in acts.items()}).reshape(1))
            else:
                cls, layer = key[0], key[1]
                t = _layer(acts, layer)
                if items != everyone:  # the usual case, one kind for the whole batch, needs no
                    t = t[items]  # gather: copying a layer's activations each step is not free
                parts.append(cls.per_item([objs[i] for i in items], t))
        values = torch.cat(parts)
        if order == everyone:
            return values
        return values[torch.argsort(torch.tensor(order, device=values.device))]

    shown = ", ".join(str(o) for o in objs[:3]) + (", ..." if len(objs) > 3 else "")
    return Objective(value, layers, f"per item [{shown}] ({len(objs)} items)", compound=False)
