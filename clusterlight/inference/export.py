"""A trained model as a standalone file: ONNX (for onnxruntime, no torch needed) or TorchScript.

Both exports wrap the loaded module (:func:`clusterlight.inference.load`) in a plain
``nn.Module`` (tracing the LightningModule itself fails: it is "not attached to a Trainer")
computing ``waveform [batch, samples] float32 -> class probabilities [batch, classes]``, the
softmax of ``scores_from_features(features(wave))``. The batch axis is dynamic; ``samples`` is
fixed, ``round(sample_rate * duration)`` of the model card (shorter clips are padded the way
training padded them, ``card["audio"]["padding"]``, before they are given to the model).

Which ONNX path: the log-mel front end is exported inside the graph (``include_frontend=True``,
the default), by the dynamo-based exporter (``torch.onnx.export(..., dynamo=True)``, torch 2.11).
Its STFT goes in one of two ways, both matching PyTorch to ~1e-6 in log-mel and ~1e-7 in
probability on ordinary audio (a loud pure tone, ~100 dB between mel bands, leaves ~1e-3 in the
weakest bands: float32 round-off, torch's own front end is as far from the float64 value there):

* ``stft="conv"`` (default): :class:`DFTLogMel`, the same computation with the windowed DFT as a
  strided ``Conv1d`` (a [2 * (n_fft // 2 + 1), 1, n_fft] kernel of cos/sin times the Hann window).
  onnxruntime runs the whole model faster with it than with the ONNX ``STFT`` op, which dominates
  the run time of the ``stft="onnx"`` graph (with the ``ReduceL2`` of the complex magnitude). Both
  exporters accept it. The dynamo export records the kernel as the few ops that compute it
  (:func:`dft_basis`), which onnxruntime folds when a session loads, rather than as a 1 MB table;
  the graph's other constants are folded at export
  (:func:`~clusterlight.inference.onnx_graph.fold_constants`).
* ``stft="onnx"``: torchaudio's own ``MelSpectrogram``; the dynamo exporter translates
  ``torch.stft`` to the ONNX ``STFT`` op (opset >= 17). The TorchScript-based exporter
  (``dynamo=False``) refuses it ("STFT does not currently support complex types": torchaudio calls
  ``stft(return_complex=True)``).

``include_frontend=False`` exports the graph from log-mel features ``[batch, n_mels, frames]``
instead (either exporter); :func:`numpy_logmel` computes those features with numpy alone (the mel
filterbank is saved next to the ONNX file as ``.npy``). It is slower (float64 numpy) and only
there for runtimes that cannot run the front end.

Next to each exported file, ``<path>.json`` says how to use it without clusterlight: class
names, sample rate, duration, padding, the input's name and shape, whether the front end is
inside and, when it is not, the front-end settings and the filterbank file.

``clusterlight export --ckpt_path CKPT --out FILE`` is the command line; ``benchmarks/throughput.py
--export_only`` measures export time and the CPU throughput of PyTorch and onnxruntime side by side.

``export_torchscript`` traces the same wrapper with torchaudio's front end (``torch.stft`` is
fine in TorchScript): ``torch.jit.load(path)(waveform)`` gives the probabilities.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from clusterlight.features import LOG_OFFSET, LogMel
from clusterlight.inference.onnx_graph import fold_constants, mark_frontend

if TYPE_CHECKING:
    from clusterlight.modules.base import AudioModule

DEFAULT_OPSET = 18  # the STFT op needs >= 17; 18 is the dynamo exporter's own default
TOLERANCE = 1e-4  # largest probability difference accepted by ``verify``
STFT_CHOICES = ("torch", "conv", "onnx")  # "onnx": torch.stft, which the exporter turns into the STFT op
_NOT_FOR_INFERENCE = ("reports", "loss")  # children of an AudioModule that prediction does not use


def dft_basis(n_fft: int, win_length: int) -> torch.Tensor:
    """The real and imaginary DFT rows times the periodic Hann window of ``win_length`` centred in
    ``n_fft``: a ``[2 * (n_fft // 2 + 1), 1, n_fft]`` float32 Conv1d kernel. Computed from index
    arithmetic (the angle's ``k * n mod n_fft`` in integers, so float32 keeps it to ~1e-7), which an
    ONNX export records as a few ops instead of a 1 MB table; onnxruntime folds them once, when the
    session loads."""
    k = torch.arange(n_fft // 2 + 1)[:, None]
    n = torch.arange(n_fft)[None]
    angle = (k * n % n_fft).float() * (2 * torch.pi / n_fft)
    m = torch.arange(n_fft) - (n_fft - win_length) // 2  # the window's own sample index
    hann = 0.5 - 0.5 * torch.cos(m.clamp(min=0).float() * (2 * torch.pi / win_length))
    window = torch.where((m >= 0) & (m < win_length), hann, torch.zeros(()))
    return torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])[:, None]


class DFTLogMel(nn.Module):
    """A :class:`~clusterlight.features.LogMel` (eval mode: no SpecAugment) with its STFT as a strided
    ``Conv1d`` over the reflect-padded wave (kernel: :func:`dft_basis`), for ONNX runtimes whose STFT
    op is slow. Same output to ~1e-6."""

    fb: torch.Tensor  # the mel filterbank [n_fft // 2 + 1, n_mels], a buffer

    def __init__(self, frontend) -> None:
        super().__init__()
        settings = frontend_settings(frontend)
        self.n_fft, self.hop_length = settings["n_fft"], settings["hop_length"]
        self.win_length = settings["win_length"]
        self.time_pool, self.log_offset = settings["time_pool"], settings["log_offset"]
        fb = frontend.mel.mel_scale.fb.detach().float().cpu().clone()
        self.register_buffer("fb", fb, persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        half = self.n_fft // 2
        x = nn.functional.pad(wave.float()[:, None], (half, half), mode="reflect")
        basis = dft_basis(self.n_fft, self.win_length).to(x.device)
        y = nn.functional.conv1d(x, basis, stride=self.hop_length)  # [B, 2 * freqs, frames]
        freqs = half + 1
        power = y[:, :freqs] ** 2 + y[:, freqs:] ** 2
        out = torch.log(torch.matmul(power.transpose(1, 2), self.fb).transpose(1, 2) + self.log_offset)
        if self.time_pool > 1:
            out = nn.functional.avg_pool1d(out, self.time_pool, ceil_mode=True)
        return out


class Probabilities(nn.Module):
    """``waveform [B, samples] -> probabilities [B, classes]`` (or from log-mel ``[B, n_mels, T]``
    with ``include_frontend=False``) of an AudioModule, as a plain ``nn.Module`` that tracing and
    ``torch.export`` accept. It shares the module's submodules (no copy); ``stft="conv"`` swaps the
    front end for :class:`DFTLogMel`."""

    def __init__(self, model: AudioModule, include_frontend: bool = True, stft: str = "torch") -> None:
        super().__init__()
        if stft not in STFT_CHOICES:
            raise ValueError(f"stft must be one of {STFT_CHOICES}, not {stft!r}")
        self.include_frontend = include_frontend
        # registered, so that tracing/export see the parameters as the wrapper's own
        self.parts = nn.ModuleDict({n: c for n, c in model.named_children() if n not in _NOT_FOR_INFERENCE})
        if stft == "conv":
            self.parts["frontend"] = DFTLogMel(model.frontend)
        # a bound method: the LightningModule stays unregistered
        self._scores: Callable[[torch.Tensor], torch.Tensor | None] = model.scores_from_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.include_frontend:
            x = self.parts["frontend"](x)
        scores = self._scores(self.parts["backbone"](x))
        if scores is None:  # a module without class scores (a pretraining one)
            raise TypeError("the module gives no class scores")
        return torch.softmax(scores.float(), dim=1)


def clip_samples(model) -> int:
    """The fixed input length of the exports: ``round(sample_rate * duration)`` of the model card."""
    audio = model.card["audio"]
    return int(round(audio["sample_rate"] * audio["duration"]))


def frontend_settings(frontend) -> dict:
    """The :class:`~clusterlight.features.LogMel` settings :func:`logmel_numpy` needs (JSON-able)."""
    spec = frontend.mel.spectrogram
    if not (spec.center and spec.pad_mode == "reflect" and spec.power == 2.0 and not spec.normalized):
        raise ValueError("logmel_numpy reproduces MelSpectrogram(center, reflect, power 2, not normalized)")
    return {
        "sample_rate": int(frontend.sample_rate),
        "n_fft": int(spec.n_fft),
        "win_length": int(spec.win_length),
        "hop_length": int(spec.hop_length),
        "n_mels": int(frontend.n_mels),
        "time_pool": int(frontend.time_pool),
        "log_offset": LOG_OFFSET,
        "window": "hann (periodic), centred in n_fft; frames centred (reflect padding of n_fft // 2)",
    }


def logmel_numpy(
    wave, fb, n_fft: int, win_length: int, hop_length: int, time_pool: int = 1, log_offset: float = 1e-6
):
    """Log-mel ``[B, n_mels, frames]`` (or ``[n_mels, frames]`` for one wave) of ``wave`` ``[B, samples]``
    with numpy only: torchaudio ``MelSpectrogram`` (periodic Hann window of ``win_length`` centred in
    ``n_fft``, centred frames with reflect padding, power 2, filterbank ``fb [n_fft // 2 + 1, n_mels]``),
    ``log(x + log_offset)``, then the mean of every ``time_pool`` frames (the last group may be
    shorter: ``avg_pool1d(ceil_mode=True)``). Self-contained (numpy imported as ``np``), so it can be
    copied into a script that has no clusterlight."""
    x = np.asarray(wave, dtype=np.float64)
    single = x.ndim == 1
    x = np.atleast_2d(x)
    x = np.pad(x, ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
    window = np.zeros(n_fft)
    left = (n_fft - win_length) // 2
    window[left : left + win_length] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)
    frames = 1 + (x.shape[1] - n_fft) // hop_length
    index = np.arange(n_fft)[None, :] + hop_length * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(x[:, index] * window, axis=-1)) ** 2  # [B, T, freqs]
    out = np.log(power @ np.asarray(fb, dtype=np.float64) + log_offset).transpose(0, 2, 1)  # [B, mels, T]
    if time_pool > 1:
        groups = -(-frames // time_pool)
        missing = groups * time_pool - frames
        summed = np.pad(out, ((0, 0), (0, 0), (0, missing))).reshape(*out.shape[:2], groups, time_pool)
        counts = np.full(groups, float(time_pool))
        counts[-1] -= missing
        out = summed.sum(-1) / counts
    out = out.astype(np.float32)
    return out[0] if single else out


def numpy_logmel(wave, frontend: Any) -> np.ndarray:
    """What ``frontend(wave)`` gives (eval mode), with numpy: ``frontend`` is a
    :class:`~clusterlight.features.LogMel`, or the ``"frontend"`` entry of an export's sidecar JSON
    (its ``mel_filterbank`` an array or the ``.npy`` file name, relative to ``sidecar_dir`` if given)."""
    if isinstance(frontend, LogMel):
        settings, fb = frontend_settings(frontend), frontend.mel.mel_scale.fb.detach().cpu().numpy()
    else:
        settings, fb = dict(frontend), frontend["mel_filterbank"]
        if isinstance(fb, (str, Path)):
            fb = np.load(Path(settings.get("sidecar_dir", ".")) / fb)
    keys = ("n_fft", "win_length", "hop_length", "time_pool", "log_offset")
    return logmel_numpy(wave, fb, **{k: settings[k] for k in keys})


def _checked_wrapper(
    model, include_frontend: bool, stft: str = "torch"
) -> tuple[Probabilities, torch.Tensor]:
    """The wrapper and an example input (batch 2, CPU), after checking the module can classify."""
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("export a module on the CPU: clusterlight.inference.load(path) (map_location='cpu')")
    wrapper = Probabilities(model, include_frontend, stft).eval()
    wave = torch.randn(2, clip_samples(model), generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.no_grad():
        example = wave if include_frontend else wrapper.parts["frontend"](wave)
        try:
            wrapper(example)
        except (TypeError, RuntimeError) as e:  # no scores (None), or they need a Trainer (centroids)
            raise ValueError(
                f"{type(model).__name__} cannot classify outside training (export a Classifier or "
                f"JointFinetune checkpoint): {e}"
            ) from e
    return wrapper, example


def _sidecar(model, path: Path, include_frontend: bool, input_name: str, example: torch.Tensor, **extra):
    from clusterlight import __version__

    audio = model.card["audio"]
    names = list(model.card["class_names"])
    shape = ["batch", *example.shape[1:]]
    info = {
        "format": "clusterlight export",
        "clusterlight_version": __version__,
        "torch_version": torch.__version__,
        "file": path.name,
        "class_names": names,
        "sample_rate": int(audio["sample_rate"]),
        "duration": float(audio["duration"]),
        "samples": clip_samples(model),
        "padding": audio.get("padding") or "loop",
        "padding_note": (
            "crop longer clips (centred) or window them; pad shorter ones to 'samples': loop = repeat "
            "the clip, zero = centre it in zeros, noise = zero plus white noise 40 dB below its RMS"
        ),
        "include_frontend": include_frontend,
        "input": {"name": input_name, "shape": shape, "dtype": "float32"},
        "output": {"name": "probabilities", "shape": ["batch", len(names)], "dtype": "float32"},
        "frontend": frontend_settings(model.frontend),
        "thresholds": model.card.get("thresholds"),
        **extra,
    }
    if not include_frontend:
        fb_file = path.with_name(path.name + ".mel_fb.npy")
        np.save(fb_file, model.frontend.mel.mel_scale.fb.detach().cpu().numpy())
        info["frontend"]["mel_filterbank"] = fb_file.name
        info["note"] = (
            "the input is log-mel features: compute them with the 'frontend' settings and the "
            "mel_filterbank .npy (clusterlight.inference.export.logmel_numpy)"
        )
    sidecar = path.with_name(path.name + ".json")
    sidecar.write_text(json.dumps(info, indent=2) + "\n")
    return info


@contextlib.contextmanager
def _quiet():
    """The exporters' progress lines, warnings and log messages (torchvision ops missing, ...) muted."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            with contextlib.redirect_stderr(io.StringIO()):
                yield
    finally:
        logger.setLevel(level)


def export_onnx(
    model,
    path: str | Path,
    include_frontend: bool = True,
    opset: int = DEFAULT_OPSET,
    dynamo: bool = True,
    verify: bool = True,
    stft: str = "conv",
) -> Path:
    """Write ``model`` (a loaded clusterlight module, on the CPU) as ONNX at ``path``: input
    ``waveform [batch, samples]`` float32 (``logmel [batch, n_mels, frames]`` with
    ``include_frontend=False``), output ``probabilities [batch, classes]``; batch is dynamic.
    Also writes ``<path>.json`` (and ``<path>.mel_fb.npy`` without the front end). ``stft``:
    ``"conv"`` (the DFT as a Conv1d, faster in onnxruntime) or ``"onnx"`` (the ONNX STFT op; dynamo
    exporter only). ``dynamo=False`` uses the TorchScript-based exporter. With ``verify`` and
    onnxruntime installed, the file's outputs are checked against PyTorch (1e-4)."""
    if stft not in ("conv", "onnx"):
        raise ValueError(f"stft must be 'conv' or 'onnx', not {stft!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    wrapper, example = _checked_wrapper(model, include_frontend, stft if include_frontend else "torch")
    input_name = "waveform" if include_frontend else "logmel"
    t0 = time.perf_counter()
    try:
        with _quiet():
            _write_onnx(wrapper, example, path, input_name, opset, dynamo)
        seconds = time.perf_counter() - t0
        _sidecar(
            model,
            path,
            include_frontend,
            input_name,
            example,
            exporter=f"torch.onnx.export(dynamo={dynamo})",
            stft=stft if include_frontend else None,
            opset=opset,
            export_seconds=round(seconds, 3),
        )
        if verify:
            reference = Probabilities(model, include_frontend).eval()  # torchaudio's own front end
            _verify_onnx(reference, path, input_name, example)
    except Exception as e:
        hint = ""
        if include_frontend and not dynamo and stft == "onnx":
            hint = " (the TorchScript-based exporter cannot export the STFT: use dynamo=True or stft='conv')"
        first = (str(e).strip().splitlines() or [""])[0][:300]  # the TorchScript exporter appends its graph
        raise RuntimeError(f"ONNX export of {type(model).__name__} failed{hint}: {first}") from e
    finally:
        model.train(was_training)
    return path


def _write_onnx(
    wrapper: Probabilities, example: torch.Tensor, path: Path, input_name: str, opset: int, dynamo: bool
) -> None:
    """``torch.onnx.export`` with a dynamic batch axis; the dynamo export's graph is tidied as
    :mod:`~clusterlight.inference.onnx_graph` says (front-end markers, constants folded)."""
    kwargs: dict = {"input_names": [input_name], "output_names": ["probabilities"], "opset_version": opset}
    if not dynamo:
        kwargs["dynamic_axes"] = {input_name: {0: "batch"}, "probabilities": {0: "batch"}}
        torch.onnx.export(wrapper, (example,), str(path), dynamo=False, **kwargs)
        return
    kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=1 << 20)},)
    program = torch.onnx.export(
        wrapper, (example,), None, dynamo=True, optimize=False, verbose=False, external_data=False, **kwargs
    )
    assert program is not None  # dynamo=True returns the ONNXProgram
    mark_frontend(program.model)
    fold_constants(program.model)
    program.save(str(path))


def _verify_onnx(wrapper: Probabilities, path: Path, input_name: str, example: torch.Tensor) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        return
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for x in (example[:1], example):
        with torch.no_grad():
            expected = wrapper(x).numpy()
        got = session.run(None, {input_name: x.numpy()})[0]
        if got.shape != expected.shape or not np.allclose(got, expected, atol=TOLERANCE, rtol=0):
            raise RuntimeError(
                f"{path}: onnxruntime differs from PyTorch by {np.abs(got - expected).max():.2e} "
                f"(batch {len(x)})"
            )


def export_torchscript(model, path: str | Path, include_frontend: bool = True) -> Path:
    """Write ``model`` as TorchScript (``torch.jit.trace`` of :class:`Probabilities`) at ``path``;
    ``torch.jit.load(path)(waveform [batch, samples])`` gives the probabilities. Also writes
    ``<path>.json``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    wrapper, example = _checked_wrapper(model, include_frontend)
    t0 = time.perf_counter()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(wrapper, (example,), check_inputs=[(example[:1],)])
            torch.jit.save(traced, str(path))
    finally:
        model.train(was_training)
    _sidecar(
        model,
        path,
        include_frontend,
        "waveform" if include_frontend else "logmel",
        example,
        exporter="torch.jit.trace",
        stft="torch" if include_frontend else None,
        export_seconds=round(time.perf_counter() - t0, 3),
    )
    return path
