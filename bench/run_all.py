"""`make bench`: every benchmark, one after the other, each printing its figures."""

from __future__ import annotations

from bench import agent, claim_latency, cli_list, fanout, log_events, startup, supervision


def main() -> None:
    for module in (startup, cli_list, claim_latency, log_events, fanout, supervision, agent):
        module.main()


if __name__ == "__main__":
    main()
