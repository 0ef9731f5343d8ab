"""`ie-eval grpo`'s reward server subprocess and its start/end table."""

import httpx
import pytest

from ie_eval.commands.grpo import comparison_table, metrics_of, names_url, served_reward_model


def test_served_reward_model_answers_then_stops(tiny_reward_dir):
    with served_reward_model(str(tiny_reward_dir)) as url:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/healthz", timeout=5.0).status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/healthz", timeout=2.0)


def test_a_server_that_cannot_start_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="exited with code"), served_reward_model(str(tmp_path / "missing")):
        pass


def test_table_compares_start_and_end_for_every_reward_component():
    start = metrics_of([{"val/reward_mean": 0.1, "val/reward_re_reward_mean": -0.2, "val/format_rate": 0.5, "x": 1}])
    end = metrics_of([{"val/reward_mean": 0.3, "val/reward_re_reward_mean": 0.1, "val/format_rate": 0.5}])
    table = comparison_table(start, end)
    assert "| reward_mean | 0.1000 | 0.3000 | +0.2000 |" in table
    assert "| reward_re_reward_mean | -0.2000 | 0.1000 | +0.3000 |" in table
    assert "| format_rate | 0.5000 | 0.5000 | +0.0000 |" in table


def test_a_url_on_the_command_line_means_no_server_is_started():
    assert names_url(["--config", "c.yaml", "--model.init_args.reward_source.url", "http://10.0.0.2:8000"])
    assert names_url(["--model.init_args.reward_source.url=http://10.0.0.2:8000"])
    assert not names_url(["--config", "c.yaml", "--model.init_args.reward_source.ckpt", "rm/export"])
