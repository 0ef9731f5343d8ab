"""Serve fixtures: one tiny checkpoint, a RewardScoring and a real uvicorn server per session.

The server runs its own copy of the model (a fast tokenizer must not be shared across
threads), on a free 127.0.0.1 port, with small limits so limit tests stay cheap.
"""

import pytest
from serve_helpers import TINY_PIXELS, load_scoring, make_app, noise_png, png_bytes


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Serve tests run clients, server and RewardScoring on 2 shared cores: a second OpenMP thread
    only spin-waits. Restored after each test, so other test folders keep torch's default."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_rm_dir(tmp_path_factory):
    """A saved tiny Qwen3-VL RewardModel (seeded)."""
    import torch

    from ie_eval.models.heads import HeadConfig
    from ie_eval.models.reward_model import RewardModel

    torch.manual_seed(0)
    model = RewardModel.build("tiny-qwen3-vl", head=HeadConfig(hidden_size=16))
    return model.save_pretrained(tmp_path_factory.mktemp("serve") / "rm")


@pytest.fixture(scope="session")
def local_reward(tiny_rm_dir):
    from ie_eval.serve.scoring import RewardScoring

    return RewardScoring.from_pretrained(tiny_rm_dir, batch_size=32, max_pixels=TINY_PIXELS)


@pytest.fixture(scope="session")
def image_root(tmp_path_factory):
    """An image_root with a good and an oversized image, plus a file outside it and a symlink pointing out."""
    base = tmp_path_factory.mktemp("images")
    root = base / "root"
    root.mkdir()
    (root / "good.png").write_bytes(png_bytes())
    (root / "big.png").write_bytes(noise_png((200, 200)))  # over the test max_image_bytes
    (base / "outside.png").write_bytes(png_bytes())
    (root / "escape.png").symlink_to(base / "outside.png")
    return root


@pytest.fixture(scope="session")
def server(tiny_rm_dir, image_root):
    """The session's real server: uvicorn on 127.0.0.1, micro-batching on (max batch 32)."""
    from ie_eval.serve.runner import BackgroundServer

    app = make_app(load_scoring(tiny_rm_dir), image_root, max_batch_size=32, max_wait_ms=5.0)
    with BackgroundServer(app) as running:
        running.app = app
        yield running


@pytest.fixture
def http(server):
    import httpx

    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        yield client
