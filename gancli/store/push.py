"""``gan push``: publish a model folder (a training run's export/ or a zoo entry) as a Hugging Face model repo."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gancli.store import hub

UPLOAD_PATTERNS = ["config.json", "README.md", "*.safetensors", "*.safetensors.index.json", "*.png", "*.gif"]
CARD_KEYS = ("license", "library_name", "tags")


@dataclass
class UploadPlan:
    folder: Path
    repo_id: str
    revision: str | None
    private: bool
    files: list[tuple[str, int]]  # (name, bytes)


def plan(path: str, repo_id: str, revision: str | None = None, private: bool = False) -> UploadPlan:
    if not hub.REPO_ID.match(repo_id) or "@" in repo_id:
        raise ValueError(f"--repo must look like owner/name, not {repo_id!r}")
    resolved = hub.resolve(path)
    if resolved.source == "hub" and not Path(path).exists():
        raise ValueError(f"{path} is a Hub repository already; push a local folder or zoo entry")
    folder = resolved.path
    if not (folder / hub.WEIGHTS_NAME).is_file():
        raise ValueError(f"{folder} has no {hub.WEIGHTS_NAME}: nothing to publish")
    card = folder / hub.CARD_NAME
    if not card.is_file():
        raise ValueError(f"{folder} has no model card ({hub.CARD_NAME}); the Hub needs one")
    front = card_metadata(card.read_text())
    missing = [k for k in CARD_KEYS if k not in front]
    if missing:
        raise ValueError(f"{card} lacks YAML metadata: {', '.join(missing)}")
    files = sorted({p for pattern in UPLOAD_PATTERNS for p in folder.glob(pattern) if p.is_file()})
    return UploadPlan(folder, repo_id, revision, private, [(p.name, p.stat().st_size) for p in files])


def card_metadata(text: str) -> dict[str, str]:
    """The top-level keys of a card's YAML front matter (enough to check it is there)."""
    if not text.startswith("---"):
        return {}
    front = text.split("---", 2)[1]
    keys = {}
    for line in front.splitlines():
        if line and not line.startswith((" ", "-", "#")) and ":" in line:
            key, _, value = line.partition(":")
            keys[key.strip()] = value.strip()
    return keys


def upload(p: UploadPlan, token: str | None = None) -> str:
    """Create the repository (if needed) and upload the folder in one commit; return the commit URL."""
    if hub.offline():
        raise hub.HubError("HF_HUB_OFFLINE is set: cannot push (unset it, or use --dry-run to see what would go)")
    from huggingface_hub import HfApi
    from huggingface_hub import errors as hf_errors

    from gancli.version import __version__

    api = HfApi(token=token or os.environ.get("HF_TOKEN") or None, library_name="gancli",
                library_version=__version__)
    try:
        api.create_repo(p.repo_id, repo_type="model", private=p.private, exist_ok=True)
        if p.revision:
            api.create_branch(p.repo_id, branch=p.revision, exist_ok=True)
        info = api.upload_folder(folder_path=str(p.folder), repo_id=p.repo_id, repo_type="model",
                                 revision=p.revision, allow_patterns=[name for name, _ in p.files],
                                 commit_message=f"Upload {p.folder.name} with gan {__version__}")
    except hf_errors.HfHubHTTPError as e:
        raise hub.HubError(f"the Hub refused the upload to {p.repo_id}: {hub.first_line(e)} "
                           "(is HF_TOKEN set, with write access?)") from None
    except hf_errors.LocalTokenNotFoundError:
        raise hub.HubError(f"no Hub token to push {p.repo_id} with: set HF_TOKEN, pass --token, or run "
                           "`hf auth login`") from None
    except hub.network_errors() as e:  # no network, a proxy, a refused connection: one line, not httpx's traceback
        raise hub.HubError(f"could not reach the Hugging Face Hub to push {p.repo_id}: {hub.first_line(e)} "
                           "(check the network, or use --dry-run to see what would go)") from None
    return str(getattr(info, "commit_url", info))
