"""What `make mlflow-ui` prints before the server starts: the full addresses of the views worth
opening, the headline runs table (its experiment id looked up in the store, which a person would
otherwise find through the API) and the model registry.

    python -m cnn_denoise.views.ui HOST PORT
"""

import socket
import sys


def addresses(host: str, port: int) -> list[str]:
    """Lines naming the headline view and the registry at http://HOST:PORT (a wildcard host is
    given as this machine's name, which other machines can reach)."""
    from cnn_denoise import tracking
    from cnn_denoise.tracking.store import open_store, registry_url, view_url

    shown = socket.getfqdn() if host in ("0.0.0.0", "::", "") else host
    base = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"
    _, experiment_id = open_store()  # created if new, with the headline view: the link works on an empty store
    return [
        f"MLflow UI on {tracking.tracking_uri()}; open:",
        f"  runs, headline columns and charts: {view_url(base, experiment_id)}",
        f"  model registry (aliases, whether each version beats its noisy input): "
        f"{registry_url(base, tracking.REGISTERED_MODEL)}",
        "  (Ctrl-C stops the server)",
    ]


def main(argv=None) -> int:
    host, port = (sys.argv[1:] if argv is None else argv)[:2]
    print("\n".join(addresses(host, int(port))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
