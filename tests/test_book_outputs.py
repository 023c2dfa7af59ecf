"""The book's chapter 4 numbers, from our package: after torch.manual_seed(123),
GPTModel(GPT_CONFIG_124M) draws the book's weights, so every seeded output the book
prints comes out the same here (DESIGN.md, "The book first")."""

import pytest
import torch

from llm_from_scratch.generate import generate, generate_text_simple
from llm_from_scratch.model import GPTConfig, GPTModel, count_parameters
from llm_from_scratch.tokenizer import get_tokenizer

GPT_CONFIG_124M = {
    "vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12,
    "n_layers": 12, "drop_rate": 0.1, "qkv_bias": False,
}

# The book's batch of two sentences, as it prints it.
BOOK_BATCH = [[6109, 3626, 6100, 345], [6109, 1110, 6622, 257]]
# What the book prints for `out = model(batch)` in training mode (dropout on): the first
# three and last three logits of each position, to the four decimals it shows.
BOOK_LOGITS = [
    [[0.3613, 0.4222, -0.0711, 0.3483, 0.4661, -0.2838],
     [-0.1792, -0.5660, -0.9485, 0.0477, 0.5181, -0.3168],
     [0.7120, 0.0332, 0.1085, 0.1018, -0.4327, -0.2553],
     [-1.0076, 0.3418, -0.1190, 0.7195, 0.4023, 0.0532]],
    [[-0.2564, 0.0900, 0.0335, 0.2659, 0.4454, -0.6806],
     [0.1230, 0.3653, -0.2074, 0.7705, 0.2710, 0.2246],
     [1.0558, 1.0318, -0.2800, 0.6936, 0.3205, -0.3178],
     [-0.1565, 0.3926, 0.3288, 1.2630, -0.1858, 0.0388]],
]
# "Hello, I am" and ten greedy tokens, as the book prints them.
BOOK_IDS = [15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267,
            49706, 43231, 47062, 34657]
BOOK_TEXT = "Hello, I am Featureiman Byeswickattribute argue logger Normandy Compton analogous"
# The book's solution to exercise 4.2: all parameters, the count "considering weight
# tying" (less the output head) and the float32 size in MB (1024**2 bytes).
BOOK_SIZES = {
    "gpt2-small": (163_009_536, 124_412_160, "621.83"),
    "gpt2-medium": (406_212_608, 354_749_440, "1549.58"),
    "gpt2-large": (838_220_800, 773_891_840, "3197.56"),
    "gpt2-xl": (1_637_792_000, 1_557_380_800, "6247.68"),
}


@pytest.fixture(scope="module")
def book_run():
    """The book's steps: seed, build, one forward pass in training mode on its batch."""
    tokenizer = get_tokenizer()
    batch = torch.stack([torch.tensor(tokenizer.encode(t))
                         for t in ["Every effort moves you", "Every day holds a"]])
    assert batch.tolist() == BOOK_BATCH
    torch.manual_seed(123)
    model = GPTModel(GPT_CONFIG_124M)
    with torch.no_grad():
        out = model(batch)  # training mode: dropout draws from the same random state
    return model, out


def test_the_training_mode_forward_gives_the_books_logits(book_run):
    _, out = book_run
    corners = torch.cat([out[..., :3], out[..., -3:]], dim=-1)
    assert torch.allclose(corners, torch.tensor(BOOK_LOGITS), atol=6e-5)


def test_the_books_size_printouts_of_section_4_6(book_run):
    """§4.6 counts the model it just ran: total, the two vocabulary-sized shapes, the
    count "considering weight tying" and the float32 size."""
    model, _ = book_run
    total = sum(p.numel() for p in model.parameters())
    assert f"{total:,}" == "163,009,536"
    assert model.tok_emb.weight.shape == model.out_head.weight.shape == torch.Size([50257, 768])
    tied = total - sum(p.numel() for p in model.out_head.parameters())
    assert f"{tied:,}" == "124,412,160"
    assert f"{total * 4 / (1024 * 1024):.2f}" == "621.83"


def test_greedy_generation_gives_the_books_ids_with_and_without_the_cache(book_run):
    model, _ = book_run
    model.eval()
    tokenizer = get_tokenizer()
    idx = torch.tensor([tokenizer.encode("Hello, I am")])
    simple = generate_text_simple(model, idx, max_new_tokens=10, context_size=1024)
    cached = generate(model, idx, 10, 1024, use_cache=True)
    assert simple[0].tolist() == BOOK_IDS
    assert cached[0].tolist() == BOOK_IDS
    assert tokenizer.decode(simple[0].tolist()) == BOOK_TEXT


@pytest.mark.parametrize("preset", BOOK_SIZES)
def test_the_book_sizes_of_exercise_4_2(preset):
    """The book's models are GPT-2's sizes without query/key/value biases or tying."""
    total, tied, megabytes = BOOK_SIZES[preset]
    assert count_parameters(GPTConfig.from_preset(preset, qkv_bias=False, tie_weights=False)) == total
    assert count_parameters(GPTConfig.from_preset(preset, qkv_bias=False)) == tied
    assert f"{total * 4 / 1024**2:.2f}" == megabytes
