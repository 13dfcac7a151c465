"""Official released weights: a catalogue, foreign formats, safe reading of pickled releases, and a cache of the
converted checkpoints.

A domain registers, in its ``weights.py``:
- ``WeightFormat`` subclasses (``Plugin.weight_formats``: name -> "module:Class"): how to recognise a release in its
  official layout (``detect``) and convert it into an fmzoo model (``convert``), exactly as the reference code
  computes;
- ``OfficialWeights`` entries (``Plugin.official``: "module:attr" of a list): the papers' released checkpoints by id,
  with their source, licence, size and the preprocessing of the release.

``fmzoo.core.from_pretrained(ID)`` of a catalogue id fetches the release's files (the Hugging Face Hub and its cache,
honouring ``HF_HUB_OFFLINE``; or a file the user gives) and ``from_pretrained(PATH)`` of a folder or file in an
official layout detects its format. Either way the release is converted ONCE into a normal fmzoo checkpoint
(safetensors, config, card with origin, licence and ``base_model``, provenance with the source files' sha256) kept
in ``$FMZOO_HUB/imported/``, so a pickle is read once, with ``torch.load(weights_only=True)`` and nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import CheckpointError
from .files import hub_root, is_offline, sha256_file


@dataclass(frozen=True)
class OfficialWeights:
    """One released checkpoint of a paper."""

    id: str  # what users type: the Hugging Face repo id where the release lives there, else "<org>/<name>"
    method: str  # "wav2vec 2.0", "VoCo", ...
    format: str  # the WeightFormat that converts it
    source: str  # where the release is published (URL)
    license: str
    params: str  # e.g. "95M"
    hf_repo: str | None = None  # Hugging Face repo holding the files (None: the user supplies the file)
    files: tuple[str, ...] = ()  # the files of the release the converter reads (in hf_repo, or the file's name)
    revision: str | None = None  # a pinned revision of hf_repo (a branch, a tag, "refs/pr/N" or a commit)
    options: dict = field(default_factory=dict)  # passed to the converter (e.g. drop a CTC head)
    input: str = ""  # the release's preprocessing in words, when it differs from its format's ``input``
    citation: str = ""
    notes: str = ""


class WeightFormat:
    """A release layout. ``detect`` must be cheap (file names, a JSON config, tensor names from a header)."""

    name: str = ""
    architecture: str = ""  # the fmzoo architecture it converts into
    description: str = ""  # the layout in words (shown by `fmzoo import --help` and in errors)
    input: str = ""  # the preprocessing the converted checkpoint's input spec enforces, in words (`fmzoo list`)
    pickle_allow: tuple = ()  # non-tensor classes a pickled release may hold (torch.load's safe globals)

    def detect(self, path: Path) -> bool:
        return False

    def convert(self, path: Path, **options):
        """Build the fmzoo model from the release at ``path`` (a folder or a file). Sets ``model.input_spec`` to the
        release's preprocessing."""
        raise NotImplementedError


def safe_torch_load(path: str | os.PathLike, allow: tuple = ()) -> Any:
    """``torch.load`` that executes no code: ``weights_only=True``, plus the classes in ``allow`` (a format's explicit
    allow-list). A file holding anything else is refused with an error naming what it held."""
    import pickle

    import torch

    try:
        with torch.serialization.safe_globals(list(allow)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{str(path)!r} holds objects other than tensors and plain containers, which fmzoo "
                              f"does not unpickle (no code runs from a file we load): {exc}".split("\n")[0]) from None
    except (RuntimeError, EOFError, OSError, ValueError, struct.error, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{str(path)!r} is not a readable torch checkpoint: {exc}".split("\n")[0]) from None


def pickle_head(path: str | os.PathLike, limit: int = 8 << 20) -> bytes:
    """The pickled structure of a torch file without its tensor data, for cheap detection by key names (search the
    bytes for a key; nothing is unpickled): ``data.pkl`` of the zip format, else the first ``limit`` bytes of the
    legacy format (its object pickle precedes the storages). Empty for an unreadable file."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith("data.pkl")]
                return z.read(names[0]) if names else b""
        with open(path, "rb") as f:
            return f.read(limit)
    except (OSError, zipfile.BadZipFile):
        return b""


def state_dict_keys(path: str | os.PathLike) -> list[str]:
    """Tensor names of a release: from a safetensors header without reading tensors, else from a safe torch.load."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            return list(f.keys())
    obj = safe_torch_load(path)
    return list(_tensors(obj))


def _tensors(obj) -> dict:
    """The state dict inside a release: the object itself, or its usual wrapper key."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "net", "network", "teacher", "student"):
            if isinstance(obj.get(key), dict) and obj[key] and all(isinstance(k, str) for k in obj[key]):
                return obj[key]
    return obj if isinstance(obj, dict) else {}


# ------------------------------------------------------------------------------------------- registry


def formats() -> dict[str, WeightFormat]:
    from .registry import _merged, import_object

    return {name: import_object(ref)() for name, (_, ref) in _merged("weight_formats").items()}


def catalogue() -> dict[str, OfficialWeights]:
    from .registry import import_object, plugins

    out: dict[str, OfficialWeights] = {}
    for plugin in plugins().values():
        if plugin.official:
            for entry in import_object(plugin.official):
                out[entry.id] = entry
    return out


def detect_format(path: Path) -> WeightFormat:
    found = [f for f in formats().values() if f.detect(path)]
    if not found:
        known = "; ".join(f"{f.name}: {f.description}" for f in formats().values()) or "none installed"
        raise CheckpointError(f"{str(path)!r} is neither an fmzoo checkpoint nor a release layout an installed package "
                              f"recognises (known formats: {known}); give --format NAME to `fmzoo import`")
    if len(found) > 1:
        raise CheckpointError(f"{str(path)!r} matches several formats ({', '.join(f.name for f in found)}): "
                              "name one with `fmzoo import --format`")
    return found[0]


# ------------------------------------------------------------------------------------------- import + cache


def imported_root() -> Path:
    return hub_root() / "imported"


def _source_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def _digest(files: list[Path], fmt: str, options: dict, shas: dict[Path, str] | None = None) -> str:
    import hashlib

    h = hashlib.sha256(json.dumps({"format": fmt, "options": options}, sort_keys=True).encode())
    for f in files:
        h.update(f.name.encode() + (shas[f] if shas else sha256_file(f)).encode())
    return h.hexdigest()[:20]


IMPORT_STEPS = ("hash the release", "read (weights_only) + convert", "write", "check")


def import_weights(source: str | os.PathLike, format: str | None = None, out: str | os.PathLike | None = None,
                   entry: OfficialWeights | None = None, progress: bool = False, **options) -> Path:
    """Convert a release (a folder or a file in its official layout) into an fmzoo checkpoint directory and return
    it. ``out``: that directory (default: the cache ``$FMZOO_HUB/imported/<format>/<digest of the files>``, reused when
    the same files were converted before). ``entry``: the catalogue entry the files belong to (for the card).
    ``progress``: a step bar on stderr (only on a terminal) over ``IMPORT_STEPS``: hashing the release's files,
    reading them with ``torch.load(weights_only=True)`` and converting, writing the checkpoint, and checking that the
    written weights are what config.json records."""
    import sys

    from tqdm.auto import tqdm

    source = Path(source)
    if not source.exists():
        raise CheckpointError(f"{str(source)!r} does not exist")
    fmt = formats().get(format) if format else detect_format(source)
    if fmt is None:
        raise CheckpointError(f"unknown weight format {format!r}; known: {', '.join(formats()) or 'none'}")
    options = {**(entry.options if entry else {}), **options}
    files = _source_files(source)
    with tqdm(total=len(IMPORT_STEPS), desc=f"import ({fmt.name})", unit="step", leave=False, file=sys.stderr,
              dynamic_ncols=True, mininterval=0, disable=None if progress else True) as bar:  # every step drawn

        def step(i: int):
            bar.update(1 if i else 0)
            bar.set_postfix_str(IMPORT_STEPS[i])

        step(0)
        shas = {f: sha256_file(f) for f in files}
        target = Path(out) if out is not None else imported_root() / fmt.name / _digest(files, fmt.name, options, shas)
        if out is None and (target / "config.json").is_file() and (target / "model.safetensors").is_file():
            return target  # converted before (written whole, then renamed into place)
        step(1)
        model = fmt.convert(source, **options)
        card = _card(fmt, entry, source)
        provenance = {"imported_from": {"format": fmt.name, "options": options, "id": entry.id if entry else None,
                                        "source": entry.source if entry else str(source),
                                        "files": [{"name": str(f.relative_to(source)) if source.is_dir() else f.name,
                                                   "sha256": shas[f], "bytes": f.stat().st_size} for f in files]}}
        step(2)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            model.save_pretrained(staging, card=card, provenance=provenance)
            step(3)
            _check_written(staging)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        bar.update(1)
    return target


def _check_written(path: Path) -> None:
    """The written checkpoint is complete and its weights are the bytes config.json records (a full disk or a
    failing write shows here, before the folder is moved into place)."""
    try:  # read here, not through the hub module (which imports this one): no import cycle
        recorded = json.loads((path / "config.json").read_text(encoding="utf-8")).get("weights_sha256")
        actual = sha256_file(path / "model.safetensors")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"the converted checkpoint written to {str(path)!r} cannot be read back ({exc}); "
                              "nothing was kept: run the import again") from None
    if recorded != actual:
        raise CheckpointError(f"the converted weights written to {str(path)!r} do not match the sha256 config.json "
                              "records (a failing disk?); nothing was kept: run the import again")


def _card(fmt: WeightFormat, entry: OfficialWeights | None, source: Path) -> dict:
    if entry is None:
        return {"title": f"{fmt.architecture} imported from {source.name} ({fmt.name})",
                "summary": f"Converted by fmzoo from a release in the {fmt.name} layout ({fmt.description}).",
                "tags": ["imported", fmt.name]}
    return {
        "title": f"{entry.method}: {entry.id} (official release, converted)",
        "summary": f"The authors' released weights of {entry.id} ({entry.params} parameters), converted by fmzoo from "
                   f"{entry.source} (format {fmt.name}) without retraining. {entry.notes}".strip(),
        "license": entry.license, "base_model": entry.hf_repo or entry.id, "citation": entry.citation,
        "tags": ["imported", "official-weights", fmt.name], "training_data": "As released by the authors; see the source.",
    }


def resolve_official(entry: OfficialWeights, revision: str | None = None) -> Path:
    """The fmzoo checkpoint of a catalogue entry: its files from the Hugging Face Hub (its local cache first; offline
    with ``HF_HUB_OFFLINE=1``/``FMZOO_OFFLINE=1``), converted once."""
    if entry.hf_repo is None:
        raise CheckpointError(f"{entry.id} is released at {entry.source}, not on the Hugging Face Hub: download "
                              f"{', '.join(entry.files) or 'the release'} and run `fmzoo import FILE --format {entry.format} "
                              f"--id {entry.id}`, then load the directory it prints")
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(entry.hf_repo, revision=revision or entry.revision,
                                   allow_patterns=list(entry.files) or None, local_files_only=is_offline(),
                                   cache_dir=os.environ.get("HF_HUB_CACHE") or None)  # read now, not at import
    except Exception as exc:  # offline cache misses, network errors, 404s: one clear message
        where = "the Hugging Face cache (offline)" if is_offline() else "the Hugging Face Hub"
        raise CheckpointError(f"{entry.id}: {where} could not provide {entry.hf_repo}"
                              f"{'@' + (revision or entry.revision) if (revision or entry.revision) else ''} "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    folder = Path(folder)
    source = folder / entry.files[0] if len(entry.files) == 1 and "*" not in entry.files[0] else folder
    return import_weights(source, entry.format, entry=entry)


def describe(entry: OfficialWeights) -> dict:
    return asdict(entry)


def input_of(entry: OfficialWeights) -> str:
    """What the release takes (its input spec in words): the entry's own ``input``, else its format's."""
    fmt = formats().get(entry.format)
    return entry.input or (fmt.input if fmt is not None else "")
