"""Requirements the wheelhouse lacks for another Python 3.11 patch release.

`pip wheel` resolves environment markers for the interpreter running it, and
`pip download --python-version` does not change `python_full_version`: a wheelhouse
made with 3.11.7 lacks what a dependency needs only before 3.11.3 (redis wants
async-timeout there), which Debian's 3.11.2 then cannot install offline. This reads the
metadata of every wheel in the folder and prints, one a line, each requirement whose
marker holds for the given version but which no wheel in the folder provides.

    python scripts/wheelhouse_extras.py deploy/offline/wheels 3.11.0
"""

from __future__ import annotations

import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename


def wheel_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(name).decode())
    return [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]


def missing(folder: Path, full_version: str) -> list[str]:
    wheels = sorted(folder.glob("*.whl"))
    present = {canonicalize_name(parse_wheel_filename(w.name)[0]) for w in wheels}
    env = {"python_full_version": full_version, "python_version": full_version.rsplit(".", 1)[0]}
    wanted: dict[str, str] = {}
    for wheel in wheels:
        for req in wheel_requirements(wheel):
            # Extras a wheel offers are only wanted when something asked for them; the
            # ones asked for are already in the folder, so evaluate with no extra.
            if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
                continue
            if canonicalize_name(req.name) not in present:
                wanted[canonicalize_name(req.name)] = f"{req.name}{req.specifier}"
    return sorted(wanted.values())


if __name__ == "__main__":
    print("\n".join(missing(Path(sys.argv[1]), sys.argv[2])))
