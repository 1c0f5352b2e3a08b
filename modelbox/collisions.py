"""Names a clone could not hold: too long for its file system, or equal to an existing name
but for case (docs/design.md, "Names" and "Limits").

A clone on macOS or Windows compares names case-insensitively (and, on macOS, under Unicode
normalization): ``m`` beside ``M``, ``v1`` beside ``V1`` or the tags ``prod`` beside
``Prod`` would be one folder, one file or one ref there. Writes refuse such a name, naming
the existing one; :mod:`modelbox.check` reports pairs already committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelbox import layout, limits
from modelbox.errors import InvalidNameError
from modelbox.names import ModelName, fold

if TYPE_CHECKING:
    from modelbox.refs import Snapshot

__all__ = ["case_twin", "check_full_name", "display_path", "refuse_case_twin",
           "refuse_tag_twin"]


def case_twin(snap: Snapshot, path: str) -> str | None:
    """The existing folder or file that ``path`` (of a new name) would meet on a
    case-insensitive file system: the first segment, from the registry root, that does not
    exist as written but does under another case (or Unicode normalization). None if none."""
    parent = ""
    for segment in path.split("/"):
        if snap.exists(f"{parent}/{segment}".lstrip("/")):
            # As written: no listing (a namespace of 500 models is one to sort per write).
            parent = f"{parent}/{segment}".lstrip("/")
            continue
        names = [name for name, _ in snap.listdir(parent)] if snap.is_dir(parent) else []
        if segment not in names:
            twin = next((n for n in names if fold(n) == fold(segment)), None)
            return None if twin is None else f"{parent}/{twin}".lstrip("/")
        parent = f"{parent}/{segment}".lstrip("/")
    return None


def refuse_case_twin(snap: Snapshot, kind: str, path: str) -> None:
    """Raise InvalidNameError if the folder ``path`` of a new ``kind`` differs only in case
    from an existing one at any segment (namespace prefixes included), naming it."""
    twin = case_twin(snap, path)
    if twin is not None:
        mine = "/".join(path.split("/")[: twin.count("/") + 1])
        which = "it" if mine == path else display_path(mine)
        raise InvalidNameError(
            kind, limits.shown(display_path(path)),
            f"{which} differs only in case from the existing "
            f"{display_path(twin)}, and a case-insensitive file system (macOS, Windows) "
            "cannot hold both; use the existing spelling or another name",
        )


def display_path(path: str) -> str:
    """A registry folder as users name it: ``team``, ``default/m``, ``default/m@v1``."""
    rest = path.partition("/")[2] or path
    for folder in (layout.VERSIONS_DIR, layout.CHECKPOINTS_DIR):
        rest = rest.replace(f"/{folder}/", "@")
    owner, sep, artifact = rest.partition(f"/{layout.ARTIFACTS_DIR}/")
    if sep:
        return f"artifact {artifact.removesuffix('.json')} of {owner}"
    return rest


def refuse_tag_twin(model: ModelName, tag: str, current: dict[str, str]) -> None:
    for existing in current:
        if existing != tag and fold(existing) == fold(tag):
            raise InvalidNameError(
                "tag", tag,
                f"it differs only in case from the existing tag {model}:{existing}, and their "
                "refs collide on a case-insensitive file system (macOS, Windows); use "
                f"{existing} or another name",
            )


def check_full_name(kind: str, name: ModelName) -> None:
    """Refuse a model (or experiment) name too long for every clone to hold its files."""
    size = len(str(name).encode("utf-8"))
    if size > limits.MAX_MODEL_BYTES:
        raise InvalidNameError(
            kind, limits.shown(str(name)),
            f"its full name is {size} bytes long; with its namespace it may be at most "
            f"{limits.MAX_MODEL_BYTES} bytes, so that its files fit in every clone",
        )
