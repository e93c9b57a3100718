"""`python -m heard_devstack install|up|down|status|logs [--profile dev|test]`."""

from __future__ import annotations

import argparse
import sys

from heard_devstack import PROFILES, SERVICES, Stack, StackError, install, mongodb_mode


def main() -> int:
    parser = argparse.ArgumentParser(prog="heard_devstack")
    parser.add_argument("command", choices=["install", "up", "up-infra", "down", "status", "logs"])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="dev")
    parser.add_argument("--no-prometheus", action="store_true")
    args = parser.parse_args()
    stack = Stack(PROFILES[args.profile])
    try:
        if args.command == "install":
            install(prometheus=not args.no_prometheus)
        elif args.command == "up-infra":
            stack.up_infra()
        elif args.command == "up":
            stack.up(prometheus=not args.no_prometheus)
            print(f"\nHeard is up (profile {args.profile}; MongoDB server: {mongodb_mode()}).")
            for service in SERVICES:
                print(f"  {service:<10} {stack.service_url(service)}   (/docs, /metrics, /readyz)")
            print(f"  intake web {stack.service_url('intake')}/")
            if not args.no_prometheus:
                print(f"  prometheus {stack.prometheus_url}")
            print(f"  kafka      {stack.kafka_bootstrap}\n  mongodb    {stack.mongodb_uri}")
            print(f"  logs       {stack.logs}/   (make logs)")
        elif args.command == "down":
            stack.down()
        elif args.command == "status":
            for name, pid in stack.status().items():
                print(f"{name:<12} {'running, pid ' + str(pid) if pid else 'stopped'}")
        elif args.command == "logs":
            for path in sorted(stack.logs.glob("*.log")):
                print(f"==> {path} <==\n{stack.tail_log(path.stem, 20)}\n")
    except StackError as error:
        print(f"heard_devstack: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
