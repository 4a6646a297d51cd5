"""A training run's directory: who may write it (the lock), what it already holds (options.json, the checkpoints),
and its running record (log.txt, metrics.jsonl). The layout is listed in ``gancli.training.trainer``.

Only the process that trains the run writes here (rank 0 under torchrun): every method that writes is a no-op on
the other ranks, so the loop can call them from every process.
"""
from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from gancli.data.imageio import atomic_write
from gancli.options import Options


class TrainError(ValueError):
    pass


def saved_options(run: Path) -> dict:
    """A run's options.json, or {} when it cannot be read."""
    try:
        saved = json.loads((run / "options.json").read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


DATA_OPTIONS = ("data", "data_b")  # paths, as given: relative ones are relative to the folder the run started in


def saved_data_path(saved: dict, key: str) -> Path | None:
    """A run's data path ``key`` as an absolute path: one given relative was relative to where the run started
    (``started_in``; runs from before that was recorded: to here)."""
    if not saved.get(key):
        return None
    path = Path(saved[key]).expanduser()
    if not path.is_absolute() and saved.get("started_in"):
        path = Path(saved["started_in"]) / path
    return path.resolve()


class RunLock:
    """One process trains a run directory at a time. ``flock`` on RUN/.lock: the kernel drops it when its holder
    dies, SIGKILL included, so a crashed run never leaves its directory locked. The file names the holder (pid,
    start time, command) for the error the next process shows; under torchrun only rank 0 takes it."""

    NAME = ".lock"

    def __init__(self, run: Path):
        self.path = run / self.NAME
        self._file = None

    def acquire(self, command: str):
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock, as before
            return
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                f.close()
                raise
            f.seek(0)
            holder = f.read().strip() or "a process that has not yet written its pid"
            f.close()
            raise TrainError(f"{self.path.parent} is being trained by another process ({holder}): wait for it to "
                             "end or stop it, or choose another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}: {command}\n")
        f.flush()
        self._file = f

    def release(self):
        if self._file is not None:
            self._file.close()  # closing drops the flock; the file stays (deleting it would race a newcomer)
            self._file = None


class RunDir:
    """RUN_DIR of one run (``opts.out``); ``main``: this process writes it."""

    def __init__(self, opts: Options, main: bool):
        self.opts, self.main = opts, main
        self.out = Path(opts.out)
        self.ckpt_dir = self.out / "checkpoints"
        self.lock = RunLock(self.out)
        self.created: list[Path] = []  # the folders claim() made, runs/ too for `--out runs/x`

    # ------------------------------------------------------------------ taking it
    def claim(self) -> bool:
        """Lock the run directory (rank 0), creating it for a new run; True when it was created here. The lock
        comes first: what the directory holds is only looked at, and cleaned, by the process that trains it."""
        if self.opts.resume and not (self.out / "options.json").exists() and not self.checkpoints():
            raise TrainError(f"--resume: {self.out} has no checkpoint to resume from")
        if not self.main:
            return False
        self.created = [d for d in (self.out, *self.out.parents) if not d.exists()]
        self.out.mkdir(parents=True, exist_ok=True)
        self.lock.acquire(self.opts.command)
        self._remove_leftovers()
        return bool(self.created)

    def abandon(self, created: bool):
        """Unlock a run that never started; one created here leaves no empty folder behind, nor the runs/ made
        for it."""
        self.lock.release()
        if created:
            (self.out / RunLock.NAME).unlink(missing_ok=True)
            for folder in self.created:
                try:
                    folder.rmdir()
                except OSError:
                    break

    def _remove_leftovers(self):
        """Temporary files of writes cut short by a crash (``atomic_write``'s ``.NAME.tmpPID``): the files they
        were to replace are intact, and no one else writes here while we hold the lock."""
        for folder in (self.out, self.ckpt_dir, self.out / "samples", self.out / "export"):
            for tmp in sorted(folder.glob(".*.tmp[0-9]*")) if folder.is_dir() else []:
                tmp.unlink(missing_ok=True)
                self.log(f"removed {tmp.relative_to(self.out)}, left by a write that a crash cut short")

    def resume_from(self) -> list[Path]:
        """The checkpoints to resume from, newest first ([] for a run that starts at step 0)."""
        existing = self.checkpoints()
        if not existing:
            if (self.out / "options.json").exists():  # its last session died before its first checkpoint
                self.warn(f"{self.out} has no checkpoint yet (its last session stopped before writing one): "
                          "starting the run from step 0")
            return []
        if not self.opts.resume:
            raise TrainError(f"{self.out} already holds a training run: add --resume to continue it, "
                             "or choose another --out")
        saved = saved_options(self.out)
        for key in self.opts.resume_keys():
            value = getattr(self.opts, key)
            if key in DATA_OPTIONS and saved.get(key) and value:
                was = saved_data_path(saved, key)
                if was == Path(value).expanduser().resolve():  # the same folder, however it is written
                    continue
                if not was.exists():  # moved: the run continues on it where it is now
                    self.log(f"--resume: the data was {was}, which is gone; continuing on {value}")
                    continue
            if key in saved and saved[key] != value:
                raise TrainError(f"--resume: {key} was {saved[key]!r} in this run, not {value!r}; resume with the "
                                 "run's own settings")
            option = self.opts.declared[key]
            if key not in saved and key in self.opts.given and value != option.default:
                # the run was made before the option existed, so it trained as its default does
                raise TrainError(f"--resume: this run was made before {option.spelling} existed and trained without "
                                 f"it ({option.default!r}); resume with the run's own settings")
        return existing[::-1]

    def checkpoints(self) -> list[Path]:
        return sorted(self.ckpt_dir.glob("step-*.pt")) if self.ckpt_dir.is_dir() else []

    # ------------------------------------------------------------------ the record
    def write_options(self, record: dict):
        atomic_write(self.out / "options.json", lambda f: f.write(json.dumps(record, indent=2).encode()))

    def log(self, message: str):
        if self.main:
            with open(self.out / "log.txt", "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def say(self, message: str):
        """A line the user reads now (on stderr, beside the progress) and finds again in log.txt."""
        if self.main:
            self.log(message)
            print(message, file=sys.stderr, flush=True)

    def warn(self, message: str):
        """Something the user should know now, not only in log.txt."""
        if self.main:
            self.log(f"warning: {message}")
            print(f"warning: {message}", file=sys.stderr, flush=True)

    def append_metrics(self, row: dict):
        """One row of metrics.jsonl: a training interval's, or an evaluation's (``"event": "eval"``)."""
        if self.main:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")

    def metrics(self, event: str | None = None) -> list[dict]:
        """The training rows of metrics.jsonl, or those of one ``event`` ("eval")."""
        path = self.out / "metrics.jsonl"
        rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
        return [r for r in rows if r.get("event") == event]

    def truncate_metrics(self, step: int):
        """metrics.jsonl up to ``step``, where the run continues. A line a crash cut off mid-write is dropped
        (and said): it would otherwise block every later reading of the file."""
        path = self.out / "metrics.jsonl"
        if not path.exists():
            return
        keep, broken = [], []
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            try:
                row = json.loads(line) if line.strip() else None
            except ValueError:
                broken.append(n)
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), (int, float)) and row["step"] <= step:
                keep.append(line)
        atomic_write(path, lambda f: f.write("".join(l + "\n" for l in keep).encode()))
        if broken:
            self.log(f"metrics.jsonl: dropped {len(broken)} unreadable line(s) (line {', '.join(map(str, broken))};"
                     " a write cut off by a crash)")

    # ------------------------------------------------------------------ when a session stops
    def resume_command(self) -> str:
        """The command that continues this run, ready to paste: the run's settings come from its options.json,
        so only the data, the directory and this session's length and device need saying."""
        opts = self.opts
        words = ["gan", "train", str(opts.data)]
        if opts.get("data_b"):
            words.append(str(opts.data_b))
        words += ["--out", str(self.out)]
        for name in ("steps", "epochs", "time"):  # a --time run continues with a new budget of the same size
            if opts.get(name) is not None:
                words += [f"--{name}", str(opts.get(name))]
        if opts.device != "auto":
            words += ["--device", opts.device]
        for name in ("bf16", "compile"):
            if opts.get(name) is not None:
                words.append(f"--{name}" if opts.get(name) else f"--no-{name}")
        return shlex.join(words + ["--resume"])

    def write_failed(self, path: Path, e: OSError, needed: int | None = None) -> TrainError:
        """A write of the run that failed (a full disk, most often), as one line: the file, the room it needs, the
        checkpoint that is still intact, and the command that continues the run once there is room."""
        full = e.errno in (errno.ENOSPC, errno.EDQUOT)
        what = "no space left on the device" if full else (e.strerror or str(e))
        what += "" if str(path) in what else f" writing {path}"
        room = ""
        if full:
            free = shutil.disk_usage(next(p for p in (path, *path.parents) if p.exists())).free
            room = (f" (it needs {_size(needed)}; {_size(free)} free)" if needed else f" ({_size(free)} free)")
        done = [p for p in self.checkpoints() if p != path]
        kept = f"the last checkpoint, {done[-1].name}, is intact" if done else "no checkpoint was written yet"
        message = (f"{what}{room}; {kept}: {'free some space' if full else 'fix that'}, then "
                   f"continue with `{self.resume_command()}`")
        try:
            self.log(f"stopped: {message}")
        except OSError:  # the log lives on the same full disk
            pass
        return TrainError(message)


def _size(n: int) -> str:
    return next(f"{n / 2**k:.1f} {unit}" for k, unit in ((30, "GB"), (20, "MB"), (10, "KB"), (0, "B")) if n >= 2**k
                or unit == "B")
