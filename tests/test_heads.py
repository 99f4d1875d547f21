"""Head and MLP pruning: physically removed structure equals masking it."""
import torch

from nncompress.data import DeviceData
from nncompress.models import build
from nncompress.prune import head_importance, prune_by_importance, prune_structure


def _m():
    torch.manual_seed(0)
    return build({"arch": "gpt", "context": 8, "d_model": 16, "n_layers": 2, "n_heads": 4, "d_mlp": 32}).eval()


def test_removing_a_head_equals_masking_it():
    m = _m()
    x = torch.randint(0, 256, (2, 8))
    p = prune_structure(m, {0: [0, 2, 3]}, {})
    m.blocks[0].attn.head_mask[1] = 0
    assert torch.allclose(p(x), m(x), atol=1e-5)
    assert p.blocks[0].attn.q.weight.shape == (12, 16) and p.blocks[0].attn.out.weight.shape == (16, 12)
    assert p.arch_config()["layer_heads"] == [3, 4]


def test_removing_dead_mlp_units_changes_nothing():
    m = _m()
    with torch.no_grad():
        m.blocks[1].fc1.weight[5:] = 0
        m.blocks[1].fc1.bias[5:] = -1   # ReLU(-1) = 0: these units are dead
    x = torch.randint(0, 256, (2, 8))
    p = prune_structure(m, {}, {1: list(range(5))})
    assert torch.allclose(p(x), m(x), atol=1e-5) and p.blocks[1].fc2.weight.shape == (16, 5)
    q = build(p.arch_config()); q.load_state_dict(p.state_dict())


def test_importance_and_fractions():
    m = _m()
    data = DeviceData(torch.randint(0, 256, (4, 8)), torch.randint(0, 256, (4, 8)))
    scores = head_importance(m, data)
    assert len(scores) == 8 and torch.all(m.blocks[0].attn.head_mask == 1)
    p = prune_by_importance(m, scores, 0.5, 0.25)
    assert sum(p.arch_config()["layer_heads"]) == 4 and p.arch_config()["layer_mlp"] == [24, 24]
