"""Every public name of the package has a docstring, and the names that take or return
tensors say which shapes and dtypes (issue 20). The API reference page renders these
docstrings (tangler.reference), so a name without one shows there as a bare signature.

Docstrings are read from the source of the imported module, as mkdocstrings reads
them: a function's or class's first statement, a method's, and for a constant the
string right after its assignment. (A dataclass without a docstring gets one made up
from its signature at run time, and a constant's `__doc__` is its type's: neither
would show that the source has none.)
"""

import ast
import importlib
import re
from pathlib import Path

from tangler.reference import public_names

ROOT = Path(__file__).resolve().parents[1]

# A shape: a parenthesised tuple of dimension names, `(batch, tokens, vocab_size)`,
# `(..., emb_dim)`, `(num_tokens,)`, `(batch, tokens + new)`; at least one comma or
# `...`, so that a remark in brackets, `(chapter 12)`, is no shape.
DIM = r"(?:\.\.\.|\d+|[A-Za-z_]\w*(?:\s*[-+*]\s*\w+)*)"
SHAPE = re.compile(rf"\(\s*{DIM}\s*(?:,\s*{DIM}\s*)*,?\s*\)")
DTYPE = re.compile(r"\b(?:u?int(?:8|16|32|64)|integer|long|bool|dtypes?|floats?"
                   r"|float(?:16|32|64)|bfloat16)\b")

# Names that take or return tensors (token ids, activations, logits, batches): their
# docstrings must state a shape and a dtype. "Class.method" for a method.
SHAPED = {
    "llm_from_scratch.tokenizer": ["checked_id_list", "text_to_token_ids", "token_ids_to_text"],
    "llm_from_scratch.model": [
        "LayerNorm.forward", "GELU.forward", "FeedForward.forward",
        "MultiHeadAttention.forward", "TransformerBlock.forward", "check_token_ids",
        "GPTModel.forward"],
    "llm_from_scratch.generate": [
        "check_generation_args", "generate_text_simple", "next_token_probabilities",
        "generate"],
    "llm_from_scratch.pretrained": ["convert_gpt2_state_dict", "load_gpt2"],
    "llm_from_scratch.kv_cache": [
        "LayerKVCache", "LayerKVCache.append", "check_cache", "cached_attention",
        "forward_with_cache", "CachedLogits.__call__"],
    "llm_from_scratch.cpu": [
        "one_row_product", "sliced_product", "FastLinear.forward", "FusedLayerNorm.forward",
        "FusedGELU.forward", "FusedAttention.forward"],
    "llm_from_scratch.train": [
        "GPTDatasetV1", "create_dataloader_v1", "calc_loss_batch", "calc_loss_loader",
        "train_model_simple", "run_loaders", "my_share", "loss_over_processes",
        "TrainingRun.train_step"],
}
# Names that take or return a model or a dict of tensors: a shape may not apply, but
# the docstring says in which dtype.
DTYPED = {
    "llm_from_scratch.model": ["meta_model", "parameter_ledger", "init_gpt2_weights",
                               "gpt2_model"],
    "llm_from_scratch.pretrained": ["read_checkpoint", "save_gpt2"],
    "llm_from_scratch.cpu": ["optimize"],
    "llm_from_scratch.train": ["load_checkpoint", "load_trained_model", "evaluate_model"],
}


def states_shape_and_dtype(doc: str) -> bool:
    return bool(SHAPE.search(doc)) and bool(DTYPE.search(doc))


def docstrings(module_name: str) -> dict[str, str | None]:
    """Top-level name or "Class.method" -> its docstring in the module's source (None:
    it has none). Methods: those the class itself defines, public or __call__."""
    module = importlib.import_module(module_name)
    body = ast.parse(Path(module.__file__).read_text(encoding="utf-8")).body
    found = {}
    for index, node in enumerate(body):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found[node.name] = ast.get_docstring(node)
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if (isinstance(item, ast.FunctionDef)
                        and (not item.name.startswith("_") or item.name == "__call__")):
                    found[f"{node.name}.{item.name}"] = ast.get_docstring(item)
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            after = body[index + 1] if index + 1 < len(body) else None
            is_doc = (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                      and isinstance(after.value.value, str))
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    found.setdefault(target.id, after.value.value if is_doc else None)
    return found


PUBLIC = [(module, name) for _, module, name in public_names(ROOT)]
DOCS = {module: docstrings(module) for module in sorted({m for m, _ in PUBLIC})}


# The book's own code, typed as the book has it: its comments explain it on the page,
# and the reference shows its value.
AS_THE_BOOK_WRITES_IT = {("llm_from_scratch.model", "GPT_CONFIG_124M")}


def test_every_public_name_has_a_docstring():
    missing = []
    for module, name in PUBLIC:
        assert hasattr(importlib.import_module(module), name), f"{module}.{name}"
        if (module, name) in AS_THE_BOOK_WRITES_IT:
            continue
        if not (DOCS[module].get(name) or "").strip():
            missing.append(f"{module}.{name}")
    assert missing == []


def test_every_public_method_of_a_public_class_has_a_docstring():
    public = set(PUBLIC)
    missing = [f"{module}.{key}" for module, docs in DOCS.items() for key, doc in docs.items()
               if "." in key and (module, key.split(".")[0]) in public
               and not (doc or "").strip()]
    assert missing == []


def test_names_that_take_or_return_tensors_state_shapes_and_dtypes():
    vague = [f"{module}.{key}" for module, keys in SHAPED.items() for key in keys
             if not states_shape_and_dtype(DOCS[module].get(key) or "")]
    assert vague == []


def test_names_that_take_or_return_models_state_dtypes():
    vague = [f"{module}.{key}" for module, keys in DTYPED.items() for key in keys
             if not DTYPE.search(DOCS[module].get(key) or "")]
    assert vague == []


def test_the_lists_name_public_names_and_methods():
    # A renamed function must not leave the lists checking nothing.
    public = set(PUBLIC)
    for table in (SHAPED, DTYPED):
        for module, keys in table.items():
            for key in keys:
                assert (module, key.split(".")[0]) in public, f"{module}.{key} is not public"
                assert key in DOCS[module], f"{module}.{key} is not defined"


def test_the_shape_and_dtype_check_can_fail():
    assert states_shape_and_dtype("x: (batch, tokens, emb_dim) float -> same shape")
    assert states_shape_and_dtype("idx: (batch, tokens + new) int64")
    assert states_shape_and_dtype("x: any shape (...), float")
    assert states_shape_and_dtype("a (num_tokens,) integer tensor")
    assert not states_shape_and_dtype("x: a float tensor of token vectors (chapter 3)")
    assert not states_shape_and_dtype("x: (batch, tokens, emb_dim) -> same shape")
    assert not states_shape_and_dtype("floating-point values, (batch, tokens)")
    assert docstrings("llm_from_scratch.tokenizer")["END_OF_TEXT"]  # constants are read
