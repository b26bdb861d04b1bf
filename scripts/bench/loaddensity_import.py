#!/usr/bin/env python3
"""LoadDensity's own HAR import, as a command for timing: read the HAR, convert it, write the plan.

    python loaddensity_import.py HAR OUT.json    (with the interpreter that has je-load-density)

Uses je_load_density.utils.recording.har_importer.load_har and har_to_action_json (defaults:
fast_http_user, 10 users, spawn rate 5, 60 s), and the package's writer
je_load_density.utils.json.json_file.json_file.write_action_json.
"""

import sys

from je_load_density.utils.json.json_file.json_file import write_action_json
from je_load_density.utils.recording.har_importer import har_to_action_json, load_har


def main():
    if len(sys.argv) != 3:
        print("usage: loaddensity_import.py HAR OUT.json", file=sys.stderr)
        return 2
    plan = har_to_action_json(load_har(sys.argv[1]))
    write_action_json(sys.argv[2], plan)
    tasks = plan["load_density"][0][1]["tasks"]["tasks"]
    print("%d tasks" % len(tasks), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
