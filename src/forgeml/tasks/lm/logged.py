"""The language model a run logged, for `forgeml generate`: its network and tokenizer, from the
local copy of the run's files when there is one (serving/cache.py), so a repeated call imports
neither MLflow nor opens its store."""

from __future__ import annotations

from forgeml.data.tokenizer import Tokenizer, load_tokenizer
from forgeml.errors import TrackingError
from forgeml.models.gpt import GPT


def load_logged(uri: str, run_id: str) -> tuple[GPT, Tokenizer]:
    """The logged network and the tokenizer it was trained with (both artifacts of the run)."""
    from forgeml.saved_network import ARTIFACT, load_network
    from forgeml.serving.cache import run_files
    from forgeml.tracking import display_uri

    network_path, tokenizer_path = f"model/artifacts/{ARTIFACT}", "config/tokenizer.json"

    def files(paths: list[str]):
        try:
            return run_files(uri, run_id, paths)
        except Exception as err:  # noqa: BLE001 - MLflow raises several kinds for a missing run
            raise TrackingError(f"Cannot load the language model of run {run_id} from "
                                f"{display_uri(uri)}: {str(err).splitlines()[0][:200]}") from None

    # The network is checked (and refused, if it is not one) before anything else is fetched.
    network = load_network(files([network_path]) / network_path)
    if not isinstance(network, GPT):
        raise TrackingError(f"Run {run_id} did not log a language model "
                            f"(its model is a {type(network).__name__}).")
    return network, load_tokenizer(files([network_path, tokenizer_path]) / tokenizer_path)
