"""The one way this project writes an output file: to a temporary beside it, then renamed.

    with output_files.replacing(path, "w") as f:       # one file
        f.write(text)

    with output_files.replacing_together([a, b]) as (pa, pb):   # several: all or none
        with pa.open("wb") as f: ...
        with pb.open("w") as f: ...

A temporary is `.<name>.<random>.partial` in the target's folder (so the rename never crosses a
file system, and a `*.tfrecord` or `*.npz` glob never matches it). It is flushed to disk, then
`os.replace`d onto the target, which is atomic on POSIX: a reader sees the previous file or the
complete new one. When writing fails (full disk, read-only folder, a directory in the way, an
exception in the caller's code, Ctrl-C) the temporaries are deleted and the targets are left as
they were: the previous file, or nothing. A killed process can leave a temporary behind;
`leftover_temporaries` finds them.

Imports nothing from the project, so that every part (renderer, face model, networks,
preprocess, resources, the programs) can use it.
"""
import contextlib
import glob
import os
import tempfile

PARTIAL_SUFFIX = ".partial"


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


class PendingFile:
    """A file written under a temporary name beside `path`, until `commit` renames it onto `path`.

    Attributes:
      path: the target.
      temporary: the path to write (exists, empty, from construction until commit or discard).
    Raises:
      OSError (from the constructor) when the target's folder does not exist or is not writable,
      or IsADirectoryError when `path` is a folder.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        if os.path.isdir(self.path):
            raise IsADirectoryError("cannot write %s: it is a folder" % self.path)
        folder, name = os.path.split(os.path.abspath(self.path))
        handle, self.temporary = tempfile.mkstemp(prefix="." + name + ".", suffix=PARTIAL_SUFFIX,
                                                  dir=folder)
        os.close(handle)
        # mkstemp makes the file private (0600); outputs get the permissions open() would give.
        os.chmod(self.temporary, 0o666 & ~_umask())

    def open(self, mode="wb"):
        """The temporary, opened for writing (a plain `open`)."""
        return open(self.temporary, mode)

    def commit(self):
        """Flushes the temporary to disk and renames it onto the target."""
        with open(self.temporary, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.temporary, self.path)

    def discard(self):
        """Deletes the temporary (the target is untouched). Safe to call twice."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.temporary)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            try:
                self.commit()
            except BaseException:
                self.discard()
                raise
        else:
            self.discard()
        return False


@contextlib.contextmanager
def replacing(path, mode="wb"):
    """Context manager: an open file whose content replaces `path` when the block ends without error.

    Args:
      path: the target file.
      mode: "w" (text) or "wb" (binary), as for open().
    Yields:
      the open file object (closed when the block ends).
    """
    with PendingFile(path) as pending:
        with pending.open(mode) as f:
            yield f


@contextlib.contextmanager
def replacing_together(paths):
    """Context manager for outputs that belong together: all of them replace their targets, or none.

    Yields the PendingFiles of `paths` (in order). When the block ends without error every
    temporary is flushed, then all are renamed; on an error all temporaries are deleted and every
    target keeps its previous content.
    """
    pending = []
    try:
        for path in paths:
            pending.append(PendingFile(path))
        yield pending
        for item in pending:
            with open(item.temporary, "rb") as f:
                os.fsync(f.fileno())
        for item in pending:
            os.replace(item.temporary, item.path)
    finally:
        for item in pending:
            item.discard()


def leftover_temporaries(folder, name_pattern):
    """Temporaries that a killed writer left in `folder` for targets matching the glob `name_pattern`."""
    return sorted(glob.glob(os.path.join(glob.escape(folder),
                                         "." + name_pattern + ".*" + PARTIAL_SUFFIX)))
