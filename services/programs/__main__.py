"""`python -m services.programs [--as-of DATE] [--replay-from DATE] [--once]`

--as-of freezes the clock (same as EXECWATCH_CLOCK); --replay-from re-runs the daily checks from
that date up to the as-of date before serving; --once does that and exits (the outbox rows are
published by the next running service).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date

from services.common.db import Database
from services.common.logging import configure_logging
from services.common.settings import get_settings
from services.programs import service
from services.programs.app import main as serve_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.programs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--as-of", type=date.fromisoformat, help="judge schedules as of this date (ISO)")
    parser.add_argument("--replay-from", type=date.fromisoformat, help="re-run the daily checks from this date")
    parser.add_argument("--once", action="store_true", help="run the checks (or the replay) and exit")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.as_of:
        settings = settings.model_copy(update={"clock": args.as_of.isoformat()})
    if args.replay_from or args.once:
        configure_logging(settings.log_level, settings.log_json, service="programs")
        today = service.clock_from_settings(settings)()
        db = Database(settings.database_url_for("programs"))
        try:
            from services.common.db import upgrade

            upgrade(db.url, "programs")
            cfg = service.Config.from_settings(settings)
            result = service.replay(db, cfg, args.replay_from or today, today)
        finally:
            db.dispose()
        by_rule = ", ".join(f"{r}/{s}={n}" for (r, s), n in sorted(result.by_rule.items())) or "none"
        print(f"checked up to {today}: {result.alerts} alert change(s) ({by_rule})")
        if args.once:
            return 0
    serve_main(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
