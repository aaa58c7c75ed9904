"""Where a pipeline file's ``prompt:`` may point, and how it is read. Its text is stored with every run and
sent to every model, so it must be a prompt the pipeline's author put there: a regular file under the
pipeline file's folder or the shipped prompts folder (no ``..`` or symlink out of them), at most
``PROMPT_FILE_MAX_BYTES``, read with a bounded read (``reasonmed.bounded_file``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from reasonmed.bounded_file import FileRefused, read_small_text

PROMPT_FILE_MAX_BYTES = 256 << 10


def shipped_prompts_dir() -> Path:
    return Path(str(resources.files("reasonmed.prompts")))


def read_prompt_text(value: str, base_dir: Path) -> str:
    """The text of ``prompt: value`` in a pipeline file in ``base_dir``; ValueError (one line) if refused."""
    given = Path(value)
    real = (given if given.is_absolute() else base_dir / given).resolve()  # every '..' and symlink followed
    roots = (base_dir.resolve(), shipped_prompts_dir().resolve())
    if not any(real.is_relative_to(root) for root in roots):
        raise ValueError(
            f"cannot read prompt file {value}: it resolves to {real}, outside the pipeline file's folder "
            f"({roots[0]}) and the shipped prompts ({roots[1]}); copy the template next to the pipeline file"
        )
    try:
        # The resolved path has no symlink left: one appearing there now is refused (O_NOFOLLOW).
        return read_small_text(real, PROMPT_FILE_MAX_BYTES, follow_symlinks=False)
    except FileRefused as exc:
        raise ValueError(f"cannot read prompt file {value}: {exc}") from None
