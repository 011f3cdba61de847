"""The subprocess that runs one job for one contender: ``python -m benchmarks.worker REQUEST``.

REQUEST is JSON: ``{"job", "contender", "locations": {role: Location}, "options",
"sizes", "params"}``. The worker imports only that contender's library, opens its
stores, runs the job and prints one line, ``RESULT <json>``; on failure it prints
``ERROR <json>`` and exits 1. A process per job keeps one contender's memory, caches
and garbage out of another's figures and makes peak RSS a per-contender number.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any, Final

from benchmarks import scenarios, workloads
from benchmarks.contenders import Contender, Options, open_contender
from benchmarks.databases import Location, analyze
from benchmarks.spec import Sizes

__all__ = ["ERROR_MARK", "JOBS", "RESULT_MARK", "main", "run"]

RESULT_MARK: Final = "RESULT "
ERROR_MARK: Final = "ERROR "
JOBS: Final = {**workloads.JOBS, **scenarios.JOBS}


def run(request: dict[str, Any]) -> dict[str, Any]:
    job = JOBS[request["job"]]
    locations = {role: Location.from_json(data) for role, data in request["locations"].items()}
    options = Options(**request.get("options", {}))
    sizes = Sizes(**request["sizes"])
    params: dict[str, Any] = dict(request.get("params", {}))
    params["_request"] = request  # for the jobs that start processes of their own
    if "main" in locations:
        main_location = locations["main"]
        params["analyze"] = lambda: analyze(main_location)
    contenders: dict[str, Contender[Any]] = {}
    try:
        for role, location in locations.items():
            contenders[role] = open_contender(request["contender"], location, options)
        result = job(contenders, sizes, params)
    finally:
        for contender in contenders.values():
            contender.close()
    if request["job"] == "build":
        for location in locations.values():
            analyze(location)
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    request = json.loads(args[0] if args else sys.stdin.read())
    try:
        result = run(request)
    except Exception as err:
        error = {
            "type": type(err).__name__,
            "message": str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__,
            "traceback": traceback.format_exc(),
        }
        print(ERROR_MARK + json.dumps(error), flush=True)
        return 1
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
