r"""Networks A and B as one network, so that every layer of the pair launches once.

The plain pair (:func:`~coda_edu.models.build_pair`) is two U-Nets run one after the other:
every convolution, batch norm and activation is launched twice per step, and at small
widths a GPU step is bound by those launches, not by arithmetic. :class:`FusedPair`
computes both networks in one pass with *grouped* layers. It is the same maths, layer by
layer, with the channels of A first and those of B second:

- a convolution of network m, :math:`h'_m = W_m * h_m` (:math:`W_m`: :math:`C_{out} \times C_{in} \times k^d`),
  becomes one convolution with ``groups=2`` and weight :math:`[W_A; W_B]`
  (:math:`2C_{out} \times C_{in} \times k^d`): group g sees only the input channels of network g,
  :math:`[h_A, h_B] \mapsto [W_A * h_A, W_B * h_B]`;
- the first convolution sees the one shared image x: ``groups=1`` and weight :math:`[W_A; W_B]`,
  :math:`x \mapsto [W_A * x, W_B * x]`;
- batch norm over the 2C channels normalises every channel by its own batch mean and
  variance, :math:`\hat h_c = \gamma_c (h_c - \mu_c) / \sqrt{\sigma^2_c + \epsilon} + \beta_c`, so it is A's
  norm on the first C channels and B's on the last C, running statistics included;
- LeakyReLU, max-pooling and upsampling act per channel; dropout drops whole
  (item, channel) maps with the same probability as in the plain pair, but from other
  random numbers (the plain pair draws all of A's masks, then B's);
- a decoder level concatenates the skip connection per network,
  :math:`[s_A, u_A, s_B, u_B]` (:func:`pair_cat`), so that each group of the next convolution sees
  its own network's channels, in the plain order :math:`[s_m, u_m]`;
- the head is a grouped 1x1 convolution; its 2K output channels split into A's and B's logits.

**Who holds the weights.** The fused module owns one tensor per layer; the parameters and
buffers of the plain modules ``model_a`` and ``model_b`` become *views* of its halves
(:meth:`FusedPair.bind`). So the plain modules always hold the current weights: validation,
checkpoints and evaluation read them as before, and loading a state dict into them loads
the fused module. Their ``state_dict()`` returns compact copies (a checkpoint file holds
A's and B's tensors, as before), and an optimiser of the fused parameters converts its
state dict to the plain layout (A's parameters, then B's) on save and back on load
(:meth:`FusedPair.attach_optimizer`). Do not move a bound plain module to another device
or memory format: that would copy its tensors and break the link.

:func:`fuse_state_dicts` and :func:`split_state_dict` convert between the two layouts
without building anything.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_PER_CHANNEL = (
    nn.LeakyReLU,
    nn.ReLU,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.Upsample,
)
_SHARED = "num_batches_tracked"  # a BN step counter: one scalar, the same for A and B


# --------------------------------------------------------------------------- state dicts
def fuse_state_dicts(state_a: dict, state_b: dict) -> dict:
    r"""Two plain state dicts -> the fused one: every tensor :math:`[t_A; t_B]` along dim 0
    (output channels of a convolution, input channels of a transposed one, the channels of a
    norm); a batch-norm step counter is taken from A (A and B count the same steps)."""
    if list(state_a) != list(state_b):
        raise ValueError("networks A and B differ in their layers (state dict keys)")
    fused = {}
    for key, a in state_a.items():
        b = state_b[key]
        if a.shape != b.shape:
            raise ValueError(f"networks A and B differ in the shape of {key}: {tuple(a.shape)} vs {tuple(b.shape)}")
        fused[key] = a.clone() if key.endswith(_SHARED) else torch.cat([a, b])
    return fused


def split_state_dict(fused: dict) -> tuple[dict, dict]:
    """The fused state dict -> (A's, B's) plain state dicts: the first and second half of every
    tensor along dim 0 (a step counter goes to both); compact copies, not views."""
    state_a, state_b = {}, {}
    for key, t in fused.items():
        if key.endswith(_SHARED):
            state_a[key], state_b[key] = t.clone(), t.clone()
        else:
            half = t.shape[0] // 2
            state_a[key], state_b[key] = t[:half].clone(), t[half:].clone()
    return state_a, state_b


# --------------------------------------------------------------------------- layers
def _fuse_layer(a: nn.Module, b: nn.Module, shared_input: bool = False) -> nn.Module:
    """One module computing ``a`` on the first half of the channels and ``b`` on the second
    (``shared_input``: both read the same input channels). Weights are not copied here."""
    if type(a) is not type(b):
        raise ValueError(f"cannot fuse a {type(a).__name__} with a {type(b).__name__}")
    if isinstance(a, _CONVS + _TRANSPOSED) and a.groups != 1:
        raise ValueError("cannot fuse grouped convolutions")
    if isinstance(a, _TRANSPOSED):
        if shared_input:
            raise ValueError("a transposed convolution cannot read the shared input")
        return type(a)(
            2 * a.in_channels,
            2 * a.out_channels,
            a.kernel_size,
            stride=a.stride,
            padding=a.padding,
            output_padding=a.output_padding,
            groups=2,
            bias=a.bias is not None,
            dilation=a.dilation,
        )
    if isinstance(a, _CONVS):
        return type(a)(
            a.in_channels if shared_input else 2 * a.in_channels,
            2 * a.out_channels,
            a.kernel_size,
            stride=a.stride,
            padding=a.padding,
            dilation=a.dilation,
            groups=1 if shared_input else 2,
            bias=a.bias is not None,
            padding_mode=a.padding_mode,
        )
    if isinstance(a, _NORMS):
        return type(a)(2 * a.num_features, a.eps, a.momentum, a.affine, a.track_running_stats)
    if isinstance(a, nn.Sequential):
        layers, shared = [], shared_input
        for la, lb in zip(a, b, strict=True):
            layers.append(_fuse_layer(la, lb, shared))
            if isinstance(la, _CONVS + _TRANSPOSED):
                shared = False  # after the first convolution the channels are [A, B]
        return nn.Sequential(*layers)
    if isinstance(a, _PER_CHANNEL):
        return copy.deepcopy(a)
    raise ValueError(f"cannot fuse a {type(a).__name__} layer")


def _channels_last_format(t: torch.Tensor):
    """The channels-last format ``t`` is stored in, or None (contiguous or ambiguous)."""
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(t.dim())
    if fmt is not None and t.is_contiguous(memory_format=fmt) and not t.is_contiguous():
        return fmt
    return None


def pair_cat(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Concatenate two paired feature maps per network: channels ``[f_A, f_B]`` and ``[s_A, s_B]``
    give ``[f_A, s_A, f_B, s_B]``. A channels-last input gives a channels-last output."""
    ca, cb = first.shape[1] // 2, second.shape[1] // 2
    if _channels_last_format(first) is not None:
        # concatenate along the innermost memory axis, so the result stays channels-last
        f = first.movedim(1, -1).unflatten(-1, (2, ca))
        s = second.movedim(1, -1).unflatten(-1, (2, cb))
        return torch.cat([f, s], dim=-1).flatten(-2).movedim(-1, 1)
    return torch.cat([first.unflatten(1, (2, ca)), second.unflatten(1, (2, cb))], dim=2).flatten(1, 2)


class _FusedUp(nn.Module):
    """A decoder level of both networks: upsample, per-network skip concatenation, conv block."""

    def __init__(self, up_a: nn.Module, up_b: nn.Module):
        super().__init__()
        self.up = _fuse_layer(up_a.up, up_b.up)
        self.block = _fuse_layer(up_a.block, up_b.block)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(pair_cat(skip, self.up(deep)))


# --------------------------------------------------------------------------- the pair
class FusedPair(nn.Module):
    """Two U-Nets of one architecture as one network: ``forward(x) -> (logits_A, logits_B)``.

    Built from the plain ``model_a`` and ``model_b`` (their current weights, device and
    memory format); with ``bind=True`` their parameters and buffers then become views of
    the fused tensors (see the module docstring). The fused state dict has the plain keys.
    """

    def __init__(self, model_a: nn.Module, model_b: nn.Module, bind: bool = True):
        super().__init__()
        names = [n for n, _ in model_a.named_parameters()]
        if names != [n for n, _ in model_b.named_parameters()]:
            raise ValueError("networks A and B differ in their layers")
        self.num_classes = model_a.head.out_channels
        # Building layers draws default initial weights: keep the global random stream untouched.
        with torch.random.fork_rng(devices=[]):
            self.stem = _fuse_layer(model_a.stem, model_b.stem, shared_input=True)
            self.down = nn.ModuleList(_fuse_layer(da, db) for da, db in zip(model_a.down, model_b.down, strict=True))
            self.up = nn.ModuleList(_FusedUp(ua, ub) for ua, ub in zip(model_a.up, model_b.up, strict=True))
            self.head = _fuse_layer(model_a.head, model_b.head)
        if [n for n, _ in self.named_parameters()] != names:
            raise ValueError("the fused pair does not mirror the plain network's parameters")
        reference = next(model_a.parameters())
        self.to(device=reference.device, dtype=reference.dtype)
        self.load_state_dict(fuse_state_dicts(model_a.state_dict(), model_b.state_dict()))
        plain = dict(model_a.named_parameters()) | dict(model_a.named_buffers())
        for name, t in list(self.named_parameters()) + list(self.named_buffers()):
            fmt = _channels_last_format(plain[name])
            if fmt is not None:
                t.data = t.data.contiguous(memory_format=fmt)
        self._hooks: list = []
        if bind:
            self.bind(model_a, model_b)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        h = skips.pop()
        for up in self.up:
            h = up(h, skips.pop())
        logits = self.head(h)
        k = self.num_classes
        return logits[:, :k], logits[:, k:]

    # ------------------------------------------------------------------ the plain modules as views
    @torch.no_grad()
    def bind(self, model_a: nn.Module, model_b: nn.Module) -> None:
        """Make every parameter and buffer of ``model_a`` (``model_b``) a view of the first
        (second) half of the fused tensor with the same name; a BN step counter becomes the
        fused counter itself. Their ``state_dict()`` then returns compact copies."""
        for name, fused in list(self.named_parameters()) + list(self.named_buffers()):
            path, _, attr = name.rpartition(".")
            for index, model in enumerate((model_a, model_b)):
                owner = model.get_submodule(path)
                if attr.endswith(_SHARED):
                    owner._buffers[attr] = fused
                    continue
                half = fused.shape[0] // 2
                view = fused.data[index * half : (index + 1) * half]
                if attr in owner._parameters:
                    owner._parameters[attr].data = view
                else:
                    owner._buffers[attr] = view
        for model in (model_a, model_b):
            self._hooks.append(model.register_state_dict_post_hook(_compact_state))

    # ------------------------------------------------------------------ optimiser state
    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Let an optimiser of this module's parameters save and load its state in the plain
        layout (the plain trainer's parameter list: A's parameters, then B's)."""
        optimizer.register_state_dict_post_hook(lambda opt, state: self.plain_optimizer_state(state))
        optimizer.register_load_state_dict_pre_hook(lambda opt, state: self.fused_optimizer_state(state))

    def plain_optimizer_state(self, state: dict) -> dict:
        """An optimiser state dict over the fused parameters -> the same over [A's, B's] parameters:
        per-parameter tensors split in halves along dim 0, scalars (a step count) copied."""
        params = list(self.parameters())
        n = len(params)
        (group,) = _one_group(state)
        if sorted(group["params"]) != list(range(n)):
            raise ValueError(f"optimiser state over {len(group['params'])} parameters, the fused pair has {n}")
        out = {}
        for j, entry in state["state"].items():
            a, b = {}, {}
            for key, value in entry.items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape == params[j].shape:
                    half = value.shape[0] // 2
                    a[key], b[key] = value[:half].clone(), value[half:].clone()
                else:
                    a[key], b[key] = value, value.clone() if isinstance(value, torch.Tensor) else value
            out[j], out[n + j] = a, b
        groups = [dict(group, params=list(range(2 * n)))]
        return {"state": out, "param_groups": groups}

    def fused_optimizer_state(self, state: dict) -> dict:
        """The inverse of :meth:`plain_optimizer_state`: halves joined into the fused parameter's
        layout (its device, dtype and memory format), a scalar taken from A."""
        params = list(self.parameters())
        n = len(params)
        (group,) = _one_group(state)
        ids = list(group["params"])
        if len(ids) != 2 * n:
            raise ValueError(f"optimiser state over {len(ids)} parameters, the plain pair has {2 * n}")
        out = {}
        for j, param in enumerate(params):
            a, b = state["state"].get(ids[j]), state["state"].get(ids[n + j])
            if a is None and b is None:
                continue
            if a is None or b is None or set(a) != set(b):
                raise ValueError(f"optimiser state of parameter {j} differs between networks A and B")
            merged = {}
            for key, value in a.items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and 2 * value.shape[0] == param.shape[0]:
                    joined = torch.empty_like(param, dtype=value.dtype)
                    half = param.shape[0] // 2
                    joined[:half].copy_(value)
                    joined[half:].copy_(b[key])
                    merged[key] = joined
                else:
                    merged[key] = value
            out[j] = merged
        return {"state": out, "param_groups": [dict(group, params=list(range(n)))]}


def _one_group(state: dict) -> list:
    groups = state["param_groups"]
    if len(groups) != 1:
        raise ValueError("the fused pair converts optimiser states with one parameter group only")
    return groups


def _compact_state(module: nn.Module, state: dict, prefix: str, local_metadata) -> None:
    """state_dict post-hook of a bound plain module: its tensors are views of the fused
    tensors, so hand out compact copies (a checkpoint then holds only this network)."""
    for key, value in state.items():
        if key.startswith(prefix) and isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
            state[key] = value.clone()


# --------------------------------------------------------------------------- algorithms' view
class PairMember:
    """Network A (``index=0``) or B (``index=1``) of a fused pair, as the trainer hands it to an
    algorithm: called alone it runs the pair and returns its own logits (correct, but both
    networks are computed); :func:`pair_logits` computes both in one call."""

    def __init__(self, pair, index: int):
        self.pair = pair  # the FusedPair, or a compiled version of it
        self.index = index

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.pair(x)[self.index]


def pair_logits(model_a, model_b, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Both networks' logits for one input, :math:`(f_A(x), f_B(x))`: one pass of the fused pair
    when ``model_a`` and ``model_b`` are its two members, else ``model_a(x), model_b(x)``."""
    if (
        isinstance(model_a, PairMember)
        and isinstance(model_b, PairMember)
        and model_a.pair is model_b.pair
        and (model_a.index, model_b.index) == (0, 1)
    ):
        return model_a.pair(x)
    return model_a(x), model_b(x)
