"""Checkpoints and the hub.

A checkpoint is a directory that uploads to the Hugging Face Hub unchanged:

    config.json        architecture, __init__ args, input spec, sha256 of the weights
    model.safetensors  the weights (safetensors only; nothing is ever unpickled)
    README.md          the model card (Hugging Face YAML metadata + sections)
    provenance.json    package versions, git commit, recipe and its hash, data files with sha256, seeds, metrics

The local hub (``$FMZOO_HUB``, default ``~/.cache/fmzoo/hub``) keeps every published revision:

    <org>/<name>/revisions/<rev>/          the checkpoint directory, never modified after publish
    <org>/<name>/revisions/<rev>.json      manifest: sha256 and size of every file (written last)
    <org>/<name>/refs/main                 the revision ``main`` points at

A publish copies into a private staging directory, renames it into place and only then writes the
manifest and moves ``refs/main``: an interrupted publish leaves no visible partial revision.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from .errors import CheckpointError, RepoIdError
from .files import _fsync_dir, atomic_write_text, hub_root, is_offline, sha256_file  # noqa: F401  (re-exported)
from .spec import validate_input_spec

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
PROVENANCE_NAME = "provenance.json"
CHECKPOINT_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, PROVENANCE_NAME)
FORMAT_VERSION = 1

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


# --------------------------------------------------------------------------- small helpers


def validate_repo_id(repo_id: str) -> tuple[str, str]:
    """``org/name`` with letters, digits, ``-``, ``_``, ``.``; no ``..``, no absolute or nested paths."""
    if not isinstance(repo_id, str) or ".." in repo_id or not _REPO_ID.fullmatch(repo_id):
        raise RepoIdError(
            f"invalid repo id {repo_id!r}: expected 'org/name' made of letters, digits, '-', '_' and '.', "
            "with no '..', no leading '/', and exactly one '/'"
        )
    org, name = repo_id.split("/")
    return org, name


def _validate_revision(revision: str) -> str:
    if ".." in revision or not _REVISION.fullmatch(revision):
        raise RepoIdError(f"invalid revision {revision!r}: letters, digits, '-', '_' and '.' only")
    return revision


def _manifest(directory: Path) -> dict[str, dict[str, Any]]:
    files = {}
    for p in sorted(directory.rglob("*")):
        if p.is_file():
            rel = p.relative_to(directory).as_posix()
            files[rel] = {"sha256": sha256_file(p), "size": p.stat().st_size}
    return files


def check_checkpoint_dir(path: Path) -> None:
    """Clear errors for a directory that is not a complete checkpoint."""
    if not path.is_dir():
        raise CheckpointError(f"checkpoint directory {str(path)!r} does not exist")
    missing = [f for f in (CONFIG_NAME, WEIGHTS_NAME) if not (path / f).is_file()]
    if missing:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is incomplete: missing {', '.join(missing)} "
            f"(a checkpoint holds {', '.join(CHECKPOINT_FILES)})"
        )


# --------------------------------------------------------------------------- the local hub


class LocalHub:
    """A directory of published checkpoints with revisions and atomic publishes."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else hub_root()

    def _repo(self, repo_id: str) -> Path:
        org, name = validate_repo_id(repo_id)
        return self.root / org / name

    def revisions(self, repo_id: str) -> list[str]:
        rev_dir = self._repo(repo_id) / "revisions"
        if not rev_dir.is_dir():
            return []
        revs = [p.stem for p in rev_dir.glob("*.json") if (rev_dir / p.stem).is_dir()]
        return sorted(revs, key=lambda r: (rev_dir / f"{r}.json").stat().st_mtime)

    def has(self, repo_id: str, revision: str | None = None) -> bool:
        try:
            self.resolve(repo_id, revision, verify=False)
            return True
        except (CheckpointError, RepoIdError):  # e.g. "refs/pr/2": a Hugging Face revision, never a local one
            return False

    def resolve(self, repo_id: str, revision: str | None = None, verify: bool = True) -> Path:
        repo = self._repo(repo_id)
        ref = revision or "main"
        _validate_revision(ref)
        ref_file = repo / "refs" / ref
        rev = ref_file.read_text().strip() if ref_file.is_file() else ref
        manifest_file = repo / "revisions" / f"{rev}.json"
        path = repo / "revisions" / rev
        if not (path.is_dir() and manifest_file.is_file()):
            known = ", ".join(self.revisions(repo_id)) or "none"
            raise CheckpointError(
                f"{repo_id!r} revision {ref!r} is not in the local hub {str(self.root)!r} (revisions: {known})"
            )
        if verify:
            expected = json.loads(manifest_file.read_text())["files"]
            for rel, meta in expected.items():
                f = path / rel
                if not f.is_file():
                    raise CheckpointError(f"{repo_id}@{rev}: file {rel!r} is missing from the local hub")
                if f.stat().st_size != meta["size"] or sha256_file(f) != meta["sha256"]:
                    raise CheckpointError(
                        f"{repo_id}@{rev}: file {rel!r} does not match its published sha256 "
                        "(corrupt or truncated); publish it again"
                    )
        return path

    def publish(self, src: str | os.PathLike, repo_id: str, ref: str = "main", replace_shipped: bool = False) -> str:
        """Copy a checkpoint's own files (``PUBLISHED_FILES`` that exist; never another file of the folder, never a
        symbolic link) into the hub as a new revision; returns the revision id. One publish per repo id at a time
        (a lock file), so concurrent publishes both land, as revisions one after the other. A published revision is
        never modified. An id shipped by an installed package is refused unless ``replace_shipped``."""
        src = Path(src)
        check_checkpoint_dir(src)
        if not replace_shipped:
            from .registry import shipped_checkpoints

            if repo_id in shipped_checkpoints():
                raise RepoIdError(f"{repo_id!r} is shipped by an installed fmzoo package; publishing it to the local hub "
                                  "would shadow the shipped checkpoint for every user of this hub. Choose another id, or "
                                  "pass replace_shipped=True (--replace-shipped) if that is what you mean")
        files = _own_files(src)
        repo = self._repo(repo_id)
        if self.root.exists() and not self.root.is_dir():
            from .errors import UsageError

            raise UsageError(f"the local hub {str(self.root)!r} (FMZOO_HUB) is not a folder; point FMZOO_HUB at a folder")
        for part in (repo.parent, repo, repo / "revisions", repo / "refs"):
            if part.is_symlink():  # a link planted in the hub would make the publish write wherever it points
                raise RepoIdError(f"{str(part)!r} in the local hub is a symbolic link (to {os.readlink(part)!r}); "
                                  "the hub writes only into its own folders: remove the link")
        (repo / "revisions").mkdir(parents=True, exist_ok=True)
        with _repo_lock(repo):
            for stale in repo.glob(".incoming-*"):  # leftovers of interrupted publishes (the lock excludes live ones)
                shutil.rmtree(stale, ignore_errors=True)
            staging = repo / f".incoming-{uuid.uuid4().hex}"
            try:
                staging.mkdir()
                for name in files:
                    _copy_shared(src / name, staging / name)
                manifest = _manifest(staging)
                rev = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
                target = repo / "revisions" / rev
                if target.is_dir() and (repo / "revisions" / f"{rev}.json").is_file():
                    shutil.rmtree(staging)  # identical content already published
                else:
                    if target.exists():  # a partial earlier attempt of the same content
                        shutil.rmtree(target)
                    os.rename(staging, target)
                    _fsync_dir(target.parent)
                    atomic_write_text(
                        repo / "revisions" / f"{rev}.json",
                        json.dumps({"repo_id": repo_id, "revision": rev, "files": manifest}, indent=2),
                    )
                atomic_write_text(repo / "refs" / _validate_revision(ref), rev + "\n")
                return rev
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)

    def contains(self, path: Path) -> bool:
        """Whether ``path`` lies inside this hub (a published revision: never to be modified in place)."""
        try:
            Path(path).resolve().relative_to(self.root.resolve())
            return True
        except ValueError:
            return False


TRANSFORMERS_FILES = ("preprocessor_config.json", "tokenizer_config.json", "vocab.json", "special_tokens_map.json",
                      "added_tokens.json")
"""The transformers side files a checkpoint may hold (a wav2vec 2.0 checkpoint writes its feature extractor and
tokenizer files so that ``AutoFeatureExtractor``/``pipeline()`` load the folder): they travel with it."""
PUBLISHED_FILES = (*CHECKPOINT_FILES, *TRANSFORMERS_FILES)


def _own_files(src: Path) -> list[str]:
    """The checkpoint's own files in ``src``: regular files, not links (a link could point anywhere: a key, a
    password file, a loop)."""
    out = []
    for name in PUBLISHED_FILES:
        p = src / name
        if p.is_symlink():
            raise CheckpointError(f"{str(p)!r} is a symbolic link; the hub publishes only the checkpoint's own regular "
                                  "files (copy the file in place of the link)")
        if p.is_file():
            out.append(name)
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _copy_shared(src: Path, dst: Path) -> None:
    """Copy a file's bytes (not its mode), fsync it, and give it the mode the umask allows (readable by the group
    and others under the usual 022), as any new file of the hub's owner."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    os.chmod(dst, 0o666 & ~_umask())


class _repo_lock:
    """An exclusive lock on one repo id of the local hub (``fcntl.flock`` on ``<repo>/.lock``)."""

    def __init__(self, repo: Path):
        self.path = repo / ".lock"

    def __enter__(self):
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl

        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


# --------------------------------------------------------------------------- resolution


def resolve_checkpoint(id_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """Find a checkpoint directory: a path (an fmzoo checkpoint, or a release in an official layout, converted once),
    the local hub, a shipped checkpoint, the catalogue of official weights, then the HF Hub."""
    if str(id_or_path).strip() == "":
        raise RepoIdError("empty model id or path: expected 'org/name' or a checkpoint directory")
    candidate = Path(id_or_path)
    if candidate.is_dir():
        from .weights import detect_format, formats, import_weights

        config = candidate / CONFIG_NAME
        fmzoo_dir = _is_fmzoo_config(config) if config.is_file() else not any(f.detect(candidate) for f in formats().values())
        if fmzoo_dir:
            check_checkpoint_dir(candidate)
            return candidate
        return import_weights(candidate, detect_format(candidate).name)
    if candidate.is_file() and candidate.suffix in (".pt", ".pth", ".bin", ".ckpt", ".tar", ".safetensors"):
        from .weights import import_weights

        return import_weights(candidate)
    repo_id = str(id_or_path)
    try:
        validate_repo_id(repo_id)
    except RepoIdError as exc:
        if candidate.exists():
            raise CheckpointError(f"{repo_id!r} is a file, not a checkpoint directory") from None
        raise RepoIdError(f"{exc}; nor is there a checkpoint directory at that path") from None
    if revision is not None and (not isinstance(revision, str) or ".." in revision or revision.startswith("/")
                                 or any(c in revision for c in "\\\0\n\r\t") or not revision.strip()):
        raise RepoIdError(f"invalid revision {revision!r}: expected a revision id, tag or branch name "
                          "(no '..', no leading '/', no backslashes or control characters)")
    hub = LocalHub()
    if hub.has(repo_id, revision):
        return hub.resolve(repo_id, revision)
    from .registry import shipped_checkpoints

    shipped = shipped_checkpoints()
    if repo_id in shipped and revision in (None, "main"):
        path = shipped[repo_id]
        check_checkpoint_dir(path)
        return path
    if is_offline() and hub.revisions(repo_id) and _REVISION.fullmatch(revision or "main"):
        return hub.resolve(repo_id, revision)  # the repo is here, the revision is not: say which revisions are
    from .weights import catalogue, resolve_official

    official = catalogue().get(repo_id)
    if official is not None:
        return resolve_official(official, revision)
    if is_offline():
        raise CheckpointError(
            f"{repo_id!r} is not in the local hub {str(hub.root)!r} nor shipped with an installed fmzoo "
            "package, and networking is off (FMZOO_OFFLINE/HF_HUB_OFFLINE)"
        )
    return _download_from_hf(repo_id, revision)


def _download_from_hf(repo_id: str, revision: str | None) -> Path:
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(repo_id, revision=revision, allow_patterns=list(PUBLISHED_FILES))
    except Exception as exc:  # network errors, 404s, auth: one clear message
        raise CheckpointError(
            f"{repo_id!r} is not in the local hub nor shipped with an installed fmzoo package, and the "
            f"Hugging Face Hub could not provide it ({type(exc).__name__}: {exc})"
        ) from None
    path = Path(path)
    check_checkpoint_dir(path)
    return path


def _is_fmzoo_config(path: Path) -> bool:
    """An fmzoo config names its architecture and init_args; a transformers or TAPE config.json does not."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return True  # let read_config report the broken file
    return isinstance(config, dict) and ("architecture" in config or "init_args" in config or "format_version" in config)


def read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads((path / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{str(path / CONFIG_NAME)!r} is not valid JSON: {exc}") from None
    for key in ("architecture", "init_args"):
        if key not in config:
            raise CheckpointError(f"{str(path / CONFIG_NAME)!r} has no {key!r}; not an fmzoo checkpoint")
    return config


# --------------------------------------------------------------------------- the mixin


def _capture_init(init):
    """Wrap __init__ so the outermost call records its bound arguments (defaults applied)."""
    sig = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        outermost = "_fmzoo_init_args" not in self.__dict__
        if outermost:
            bound = sig.bind(self, *args, **kwargs)
            bound.apply_defaults()
            captured = {k: v for k, v in list(bound.arguments.items())[1:]}
            for name, param in sig.parameters.items():
                if param.kind is inspect.Parameter.VAR_KEYWORD and name in captured:
                    captured.update(captured.pop(name))
                elif param.kind is inspect.Parameter.VAR_POSITIONAL and name in captured:
                    raise TypeError(f"{type(self).__name__}: *{name} cannot be stored in config.json")
            object.__setattr__(self, "_fmzoo_init_args", captured)
        init(self, *args, **kwargs)

    wrapper._fmzoo_wrapped = True
    return wrapper


def _json_ready(name: str, value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except TypeError:
        raise TypeError(
            f"__init__ argument {name!r}={value!r} is not JSON-serialisable; checkpoints store "
            "__init__ arguments in config.json, so pass plain numbers, strings, lists and dicts"
        ) from None


class HubMixin:
    """Gives an ``nn.Module`` ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``.

    ``__init__`` arguments are captured automatically; ``self.input_spec`` (a JSON dict) travels
    with the weights and is restored on load.
    """

    input_spec: dict | None = None
    input_spec_class: type | None = None  # the domain's fmzoo.core.spec.InputSpec subclass (its package's spec.py)
    checkpoint_dir: Path | None = None  # set by from_pretrained

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_fmzoo_wrapped", False):
            cls.__init__ = _capture_init(init)

    # -- config ------------------------------------------------------------------------------
    @property
    def init_args(self) -> dict[str, Any]:
        return dict(getattr(self, "_fmzoo_init_args", {}))

    def get_config(self) -> dict[str, Any]:
        validate_input_spec(self, self.input_spec, f"{type(self).__name__}.input_spec")  # never ship what load refuses
        return {
            "architecture": type(self).__name__,
            "format_version": FORMAT_VERSION,
            "init_args": {k: _json_ready(k, v) for k, v in self.init_args.items()},
            "input_spec": _json_ready("input_spec", self.input_spec),
        }

    # -- save --------------------------------------------------------------------------------
    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        card: dict | None = None,
        provenance: dict | None = None,
    ) -> Path:
        """Write config.json, model.safetensors, provenance.json (which stores the whole card) and README.md
        (rendered from that card). ``card`` is a CardData or its dict; ``provenance`` a Provenance or its dict."""
        from safetensors.torch import save_model

        from .card import CardData, render_card
        from .provenance import Provenance, build_provenance

        prov = Provenance.from_dict(provenance.to_dict() if isinstance(provenance, Provenance) else provenance)
        card = CardData.from_dict(card if card is not None else prov.card, "card")  # checked before any write
        prov.card = card.to_dict()
        config = self.get_config()  # validates the input spec: a refused save writes nothing, not even the folder
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".model.", suffix=".safetensors.tmp")
        os.close(fd)
        try:
            save_model(self, tmp, metadata={"format": "pt"})  # one key: safetensors orders several at random, per process
            config["weights_sha256"] = sha256_file(tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, out / WEIGHTS_NAME)
        finally:
            Path(tmp).unlink(missing_ok=True)
        prov = build_provenance(prov)
        atomic_write_text(out / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
        atomic_write_text(out / PROVENANCE_NAME, json.dumps(prov, indent=2) + "\n")
        atomic_write_text(out / CARD_NAME, render_card(config, card, prov))
        return out

    # -- load --------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, id_or_path: str | os.PathLike, revision: str | None = None, **overrides):
        path = resolve_checkpoint(id_or_path, revision)
        config = read_config(path)
        arch = config["architecture"]
        if cls is not HubMixin and arch == cls.__name__:
            target = cls
        else:  # resolved through the registry, never through an import path read from the file
            from .registry import model_class

            try:
                target = model_class(arch)
            except KeyError:
                if cls is HubMixin:
                    raise
                target = None
            if cls is not HubMixin and (target is None or not issubclass(target, cls)):
                raise CheckpointError(
                    f"{str(path)!r} holds a {arch!r}, not a {cls.__name__!r}; "
                    "use fmzoo.core.from_pretrained to pick the class from config.json"
                )
        init_args = {**config["init_args"], **overrides}
        _check_shapes_before_allocating(target, init_args, path / WEIGHTS_NAME)
        try:
            model = target(**init_args)
        except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
            # init_args the class does not take (a config written for another class) or values it cannot build
            raise CheckpointError(f"{str(path / CONFIG_NAME)!r}: its init_args do not build a {arch} "
                                  f"({type(exc).__name__}: {exc}){_suspicious(target, init_args)}") from None
        load_weights(model, path / WEIGHTS_NAME, config.get("weights_sha256"))
        model.input_spec = validate_input_spec(target, config.get("input_spec"), f"{path / CONFIG_NAME}: input_spec")
        model.checkpoint_dir = path  # where the weights came from (its provenance names the data they saw)
        model.eval()
        return model

    # -- publish -----------------------------------------------------------------------------
    def push_to_hub(
        self,
        repo_id: str,
        hub: str = "hf",
        card: dict | None = None,
        provenance: dict | None = None,
        token: str | None = None,
        **hf_options,
    ) -> str:
        """Publish the model, as the name means in Hugging Face libraries: to the Hugging Face Hub by default
        (returns the commit or pull-request URL; ``hf_options``: private, revision, commit_message, create_pr, as
        ``publish_dir`` takes them). ``hub="local"`` publishes to the local hub (``$FMZOO_HUB``) instead and returns
        the revision. Offline (FMZOO_OFFLINE/HF_HUB_OFFLINE) the default is an error that names ``hub="local"``."""
        validate_repo_id(repo_id)
        _check_hub(hub)
        if hub == "hf" and is_offline():  # before the model is saved: nothing is written for a push that cannot go
            raise CheckpointError(_OFFLINE_PUSH)
        with tempfile.TemporaryDirectory(prefix="fmzoo-push-") as tmp:
            self.save_pretrained(tmp, card=card, provenance=provenance)
            return publish_dir(tmp, repo_id, hub=hub, token=token, **hf_options)


_OFFLINE_PUSH = ("cannot push to the Hugging Face Hub: networking is off (FMZOO_OFFLINE or HF_HUB_OFFLINE is set); "
                 "unset it, or publish to the local hub with hub='local' (CLI: --hub local)")


def _check_hub(hub: str) -> None:
    if hub not in ("local", "hf"):
        raise ValueError(f"hub must be 'hf' (the Hugging Face Hub) or 'local' (the local hub, $FMZOO_HUB), got {hub!r}")


def publish_dir(src: str | os.PathLike, repo_id: str, hub: str = "local", token: str | None = None,
                replace_shipped: bool = False, private: bool = False, revision: str | None = None,
                commit_message: str | None = None, create_pr: bool = False) -> str:
    """Publish an existing checkpoint directory to the local hub (returns the revision) or the Hugging Face Hub
    (returns the commit or pull-request URL; ``private``, ``revision`` (a branch, created from main when missing),
    ``commit_message`` and ``create_pr`` as in ``huggingface_hub.HfApi.upload_folder``)."""
    validate_repo_id(repo_id)
    _check_hub(hub)
    check_checkpoint_dir(Path(src))
    if hub == "local":
        if private or revision or commit_message or create_pr:
            raise ValueError("private/revision/commit_message/create_pr apply to hub='hf' only")
        return LocalHub().publish(src, repo_id, replace_shipped=replace_shipped)
    if hub == "hf":
        if is_offline():
            raise CheckpointError(_OFFLINE_PUSH)
        from huggingface_hub import HfApi

        from . import __version__

        api = HfApi(token=token)
        api.create_repo(repo_id, exist_ok=True, private=private)
        if revision and not create_pr:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        files = _own_files(Path(src))  # the same rule as the local hub: no links, only the checkpoint's files
        info = api.upload_folder(folder_path=str(src), repo_id=repo_id, allow_patterns=files, revision=revision,
                                 commit_message=commit_message or f"Upload {repo_id} with fmzoo {__version__}",
                                 create_pr=create_pr)
        return str(getattr(info, "pr_url", None) or getattr(info, "commit_url", info))
    raise ValueError(f"hub must be 'local' or 'hf', got {hub!r}")


def _suspicious(target: type, init_args: dict) -> str:
    """The init_args whose values cannot be sizes the class expects, named for an error message: a negative number,
    a fraction or a string where the constructor's default is an integer, a string where it is a number."""
    import inspect

    try:
        params = inspect.signature(target.__init__).parameters
    except (TypeError, ValueError):
        params = {}
    odd = []
    for key, value in init_args.items():
        default = params[key].default if key in params else inspect.Parameter.empty
        number = isinstance(value, int | float) and not isinstance(value, bool)
        int_default = isinstance(default, int) and not isinstance(default, bool)
        if (number and value < 0) or (int_default and isinstance(value, float) and not value.is_integer()) or (
                isinstance(default, int | float) and not isinstance(default, bool) and isinstance(value, str)):
            odd.append(f"{key}={value!r}" + (f" (default {default!r})" if default is not inspect.Parameter.empty else ""))
    return f"; check {', '.join(odd)}: the config was edited or belongs to other weights" if odd else ""


def _check_shapes_before_allocating(target: type, init_args: dict, weights: Path) -> None:
    """Build the model on torch's meta device (no memory) and compare every parameter's shape with the safetensors
    header (read without loading a tensor): an edited config (``ff_dim: 2**31``) is refused before it allocates.
    A class that cannot be built on the meta device is left to the strict load."""
    import torch
    from safetensors import SafetensorError, safe_open

    if not weights.is_file():
        return
    try:
        with safe_open(str(weights), "pt") as f:
            header = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, Exception):  # a broken file: load_weights reports it
        return
    try:
        with torch.device("meta"):
            meta = target(**init_args)
    except TypeError as exc:
        raise CheckpointError(f"the checkpoint's init_args do not fit {target.__name__}: {exc}"
                              f"{_suspicious(target, init_args)}") from None
    except RuntimeError as exc:
        if "overflow" in str(exc):  # sizes so large that even their element count overflows
            raise CheckpointError(f"config.json describes a {target.__name__} too large to build ({exc}); the config "
                                  "was edited or belongs to other weights") from None
        return  # some constructors run real tensor code, which the meta device cannot; the strict load still checks
    except Exception:  # noqa: BLE001 - as above
        return
    shapes = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
    wrong = [k for k in shapes if k in header and shapes[k] != header[k]]
    if wrong:
        k = wrong[0]
        raise CheckpointError(f"model.safetensors does not fit the {target.__name__} that config.json (and overrides) "
                              f"describe: {k} would be {list(shapes[k])} but model.safetensors holds {list(header[k])} "
                              f"({len(wrong)} tensors differ); the config was edited or belongs to other weights")


def load_weights(model, weights: Path, expected_sha256: str | None = None) -> None:
    """Strictly load safetensors weights, with clear errors for corrupt, truncated or mismatched files."""
    if not weights.is_file():
        raise CheckpointError(f"weights file {str(weights)!r} is missing")
    if expected_sha256 is not None and sha256_file(weights) != expected_sha256:
        raise CheckpointError(
            f"{str(weights)!r} does not match the sha256 recorded in config.json: the file is corrupt or truncated"
        )
    try:
        _stream_into(model, weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{str(weights)!r} does not fit {type(model).__name__}: {exc}") from None


_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
              "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def _stream_into(model, weights: Path) -> None:
    """Read the file's tensors straight into the model's own memory, one at a time, with plain reads (no mapping of
    the whole file, no second copy of the state dict): peak memory is the model plus at most one tensor. Strict: a
    tensor the model lacks, a shape that differs, or a model tensor the file lacks (other than one tied to a tensor
    the file holds: safetensors stores shared weights once) is an error naming it."""
    import struct

    import torch

    def unreadable(why: str):
        return CheckpointError(f"{str(weights)!r} is not a readable safetensors file ({why}): corrupt or truncated")

    size = weights.stat().st_size
    state = model.state_dict(keep_vars=True)
    filled: set[int] = set()
    with open(weights, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        if not 2 <= n <= size - 8:
            raise unreadable("bad header length")
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError):
            raise unreadable("header is not JSON") from None
        if not isinstance(header, dict):
            raise unreadable("header is not a JSON object")
        header.pop("__metadata__", None)
        unexpected = sorted(set(header) - set(state))
        if unexpected:
            raise CheckpointError(f"{str(weights)!r} does not fit {type(model).__name__}: unexpected tensors "
                                  f"{unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        with torch.no_grad():
            for key, info in header.items():
                try:
                    dtype = getattr(torch, _ST_DTYPES[info["dtype"]])
                    shape = tuple(int(d) for d in info["shape"])
                    start, end = (int(o) for o in info["data_offsets"])
                except (KeyError, TypeError, ValueError):
                    raise unreadable(f"bad entry for {key!r}") from None
                dst = state[key]
                if shape != tuple(dst.shape):
                    raise CheckpointError(f"{str(weights)!r} does not fit {type(model).__name__}: {key!r} has shape "
                                          f"{shape} in the file, {tuple(dst.shape)} in the model")
                nbytes = dst.numel() * dtype.itemsize
                if end - start != nbytes or 8 + n + end > size:
                    raise unreadable(f"{key!r} runs past the end of the file")
                f.seek(8 + n + start)
                if dst.dtype == dtype and dst.is_contiguous() and dst.device.type == "cpu" and nbytes:
                    got = f.readinto(dst.detach().reshape(-1).view(torch.uint8).numpy())  # the model's own memory
                else:  # another dtype or layout: read, then copy (and cast) as load_state_dict would
                    buf = bytearray(nbytes)
                    got = f.readinto(buf)
                    if nbytes:
                        dst.copy_(torch.frombuffer(buf, dtype=dtype).reshape(shape))
                if got != nbytes:
                    raise unreadable(f"{key!r} is truncated")
                filled.add(dst.untyped_storage().data_ptr())
    missing = [k for k, v in state.items() if k not in header and v.untyped_storage().data_ptr() not in filled]
    if missing:
        raise CheckpointError(f"{str(weights)!r} does not fit {type(model).__name__}: missing tensors "
                              f"{missing[:5]}{' ...' if len(missing) > 5 else ''}")

