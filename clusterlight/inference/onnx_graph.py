"""What the export and the quantization need to know of an exported ONNX graph: which nodes compute the
front end, and how its constant parts are folded."""

from __future__ import annotations

FRONTEND_SCOPE = "parts.frontend"  # the name scope of the front end's nodes in a dynamo export
_SCOPES_KEY = "pkg.torch.onnx.name_scopes"  # the node metadata the dynamo exporter records them in
FRONTEND_KEY = "clusterlight.frontend"  # the marker :func:`mark_frontend` leaves on the front end's nodes


def is_frontend_node(metadata: dict[str, str]) -> bool:
    """Whether a node of an export (given its metadata) computes the front end."""
    return metadata.get(FRONTEND_KEY) == "true"


def mark_frontend(model) -> None:
    """Replace the dynamo exporter's metadata on every node of an ``onnx_ir`` model (module paths and
    class names, ~90 KB in a 1 MB model) by one marker on the nodes that compute the front end, which
    :func:`fold_constants` and the int8 quantization leave in float."""
    for node in model.graph:
        frontend = f"'{FRONTEND_SCOPE}'" in node.metadata_props.get(_SCOPES_KEY, "")
        node.metadata_props.clear()
        if frontend:
            node.metadata_props[FRONTEND_KEY] = "true"


def frontend_nodes(model) -> list[str]:
    """Names of the nodes of an exported ``onnx.ModelProto`` that compute the front end."""
    return [n.name for n in model.graph.node if is_frontend_node({p.key: p.value for p in n.metadata_props})]


def fold_constants(model, keep_frontend: bool = True) -> None:
    """Fold the constant parts of an exported graph (an ``onnx_ir`` model, in place), as the exporter's
    own optimiser does, but without size limits and never in the front end: the LSTM's weights
    (reordered per gate by the exporter) become plain initializers that quantization finds, while the
    DFT kernel (:func:`~clusterlight.inference.export.dft_basis`) stays a few ops instead of a 1 MB
    table. ``keep_frontend=False`` folds the front end too (its kernel becomes a table), which
    quantizing the front end needs."""
    from onnxscript.optimizer import optimize_ir

    optimize_ir(
        model,
        should_fold=lambda node: False if keep_frontend and is_frontend_node(node.metadata_props) else None,
        input_size_limit=1 << 30,
        output_size_limit=1 << 30,
    )
