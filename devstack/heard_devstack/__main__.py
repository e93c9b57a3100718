"""`python -m heard_devstack install|up|down|status|logs [--profile dev|test]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys

from heard_devstack import PROFILES, SERVICES, Stack, StackError, install, mongodb_mode, selected_profile


async def watch(bootstrap: str) -> None:
    """Prints every event on every Heard topic as it passes, so a newcomer can see feedback move."""
    from aiokafka import AIOKafkaConsumer

    from heard_shared.topics import ALL_TOPICS

    consumer = AIOKafkaConsumer(*ALL_TOPICS, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest")
    await consumer.start()
    print(f"watching {', '.join(ALL_TOPICS)} (Ctrl-C to stop)", flush=True)
    try:
        async for record in consumer:
            try:
                event = json.loads(record.value)
                summary = f"{event.get('type')}  subject={event.get('subject')}  data={json.dumps(event.get('data'))}"
            except (ValueError, TypeError):
                summary = f"undecodable value {record.value[:80]!r}"
            print(f"{record.topic:<22} {summary[:300]}", flush=True)
    finally:
        await consumer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="heard_devstack")
    parser.add_argument(
        "command", choices=["install", "up", "up-infra", "down", "status", "logs", "watch", "issue-token"]
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="dev")
    parser.add_argument("--no-prometheus", action="store_true")
    parser.add_argument("--browser", action="store_true", help="install: also Chromium, for the page tests")
    parser.add_argument("--name", help="issue-token: the staff member's name (what they sign in with)")
    parser.add_argument("--role", help="issue-token: unit_member, supervisor, commander, professional_standards, ...")
    parser.add_argument("--unit", help="issue-token: the unit a unit member works in, e.g. north-patrol")
    args = parser.parse_args()
    stack = Stack(selected_profile(args.profile))
    try:
        if args.command == "install":
            install(prometheus=not args.no_prometheus, browser=args.browser)
        elif args.command == "up-infra":
            stack.up_infra()
        elif args.command == "up":
            stack.up(prometheus=not args.no_prometheus)
            print(f"\nHeard is up (profile {args.profile}; MongoDB server: {mongodb_mode()}).")
            web = stack.service_url("web")
            print(f"  web        {web}   (the resident site; staff console {web}/staff, oversight {web}/oversight)")
            for service in SERVICES:
                if service != "web":
                    print(f"  {service:<10} {stack.service_url(service)}   (/docs, /metrics, /readyz)")
            if not args.no_prometheus:
                print(f"  prometheus {stack.prometheus_url}")
            smtp = stack.profile.mailpit_smtp_port
            print(f"  mailpit    {stack.mailpit_url}   (every e-mail the platform sends; SMTP on :{smtp})")
            print(f"  kafka      {stack.kafka_bootstrap}\n  mongodb    {stack.mongodb_uri}")
            print(f"  logs       {stack.logs}/   (make logs)")
        elif args.command == "down":
            stack.down()
        elif args.command == "status":
            for name, pid in stack.status().items():
                print(f"{name:<12} {'running, pid ' + str(pid) if pid else 'stopped'}")
        elif args.command == "watch":
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(watch(stack.kafka_bootstrap))
        elif args.command == "issue-token":
            # intake's operator CLI against this platform's intake database (the token is printed once).
            unit = ["--unit", args.unit] if args.unit else []
            command = ["issue-token", "--name", args.name or "", "--role", args.role or "", *unit]
            env = {**os.environ, **stack.service_env("intake")}
            return subprocess.run([sys.executable, "-m", "heard_intake.cli", *command], env=env, check=False).returncode
        elif args.command == "logs":
            for path in sorted(stack.logs.glob("*.log")):
                print(f"==> {path} <==\n{stack.tail_log(path.stem, 20)}\n")
    except StackError as error:
        print(f"heard_devstack: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
