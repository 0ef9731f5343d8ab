"""ServeConfig defaults and files, and `ie-eval serve-rm` as a real process."""

import json
import subprocess
import sys
import time

import httpx
import pytest

from ie_eval.serve.config import ServeConfig, ServeConfigError, load_serve_config
from ie_eval.serve.runner import bind_free_port


def test_defaults_bind_loopback_and_keep_the_checkpoint_weights():
    config = ServeConfig()
    assert config.host == "127.0.0.1" and config.reward_weights is None and config.image_root is None
    assert config.max_batch_size > 1 and config.max_queue > 0


def test_yaml_and_json_files_set_fields_and_flags_override_them(tmp_path):
    yaml_file = tmp_path / "serve.yaml"
    yaml_file.write_text("max_batch_size: 4\nreward_weights: [0.2, 0.6, 0.2]\nport: 9000\n")
    config = load_serve_config(yaml_file, {"port": 9100, "host": None})
    assert config.max_batch_size == 4 and config.reward_weights == (0.2, 0.6, 0.2) and config.port == 9100
    json_file = tmp_path / "serve.json"
    json_file.write_text(json.dumps({"max_queue": 3}))
    assert load_serve_config(json_file).max_queue == 3


@pytest.mark.parametrize(
    "values, message",
    [
        ({"max_batch_sise": 4}, "unknown ServeConfig key.*max_batch_sise"),
        ({"max_queue": 0}, "max_queue must be a positive number"),
        ({"reward_weights": [1, 2]}, "reward_weights must be 3 numbers"),
        ({"reward_weights": [0, 0, 0]}, "reward_weights must be finite, >= 0, not all 0"),
        ({"torch_threads": 0}, "torch_threads must be None or an int >= 1"),
    ],
)
def test_bad_config_values_name_the_key(tmp_path, values, message):
    path = tmp_path / "serve.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ServeConfigError, match=message):
        load_serve_config(path)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ServeConfigError, match="nope.yaml: serve config file not found"):
        load_serve_config(tmp_path / "nope.yaml")


def test_ie_eval_serve_rm_serves_the_checkpoint(tiny_rm_dir, tmp_path):
    sock = bind_free_port()
    port = sock.getsockname()[1]
    sock.close()
    config = tmp_path / "serve.yaml"
    config.write_text("reward_weights: [0.2, 0.6, 0.2]\ntorch_threads: 1\n")
    command = [sys.executable, "-m", "ie_eval.cli", "serve-rm", "--ckpt", str(tiny_rm_dir), "--port", str(port),
               "--config", str(config), "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        info = wait_for_info(f"http://127.0.0.1:{port}", process)
        assert info["reward_weights"] == pytest.approx([0.2, 0.6, 0.2]) and info["model"] == "tiny-qwen3-vl"
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert "Traceback" not in output, output


def wait_for_info(url, process, timeout_s=90.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.communicate()[0].decode()}")
        try:
            return httpx.get(f"{url}/v1/info", timeout=2.0).json()
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up in {timeout_s}s")
