"""The S3 server's own share of scenario 14: ``python plain_upload.py DIR URL COUNT``.

A sidecar with no registry: every 0.5 s it looks for checkpoints (``*.ckpt``) in DIR that
open as a whole zip, and uploads each once with s3fs's own ``put_file`` (its defaults, as
a user's sync script would) under URL, until COUNT are up. No hashing, no pointers, no
commits: what the loop loses to it is what any upload to a SeaweedFS on the same cores
costs, the floor under the watcher's S3 row.
"""

import sys
import time
import zipfile
from pathlib import Path

import s3fs


def main() -> int:
    folder, url, count = Path(sys.argv[1]), sys.argv[2].removeprefix("s3://"), int(sys.argv[3])
    fs = s3fs.S3FileSystem()
    done: set[str] = set()
    while len(done) < count:
        for path in sorted(folder.glob("*.ckpt")):
            if path.name in done:
                continue
            try:
                with zipfile.ZipFile(path) as archive:  # the central directory is written last
                    archive.infolist()
            except (OSError, zipfile.BadZipFile):
                continue
            fs.put_file(str(path), f"{url}/{path.name}")
            done.add(path.name)
            print(path.name, time.time(), flush=True)
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
