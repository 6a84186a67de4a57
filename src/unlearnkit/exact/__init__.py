"""Exact unlearning: SISA and S3T sharded training, deletion with a hash-chained ledger, parallel shards.

::

    import unlearnkit as uk
    from unlearnkit.exact import SISA, ModelSpec, ShardedModel, audit

    sm = ShardedModel.fit("runs/sisa", (X, y), SISA(shards=5, slices=4), model=ModelSpec("mlp", (1, 8, 8), 10),
                          recipe=uk.Recipe(epochs=10, lr=0.05))
    report = sm.delete([3, 14, 15])          # retrains only the affected shards from the affected slice
    assert audit(sm).ok                       # proven from the checkpoint keys
    predictions = sm.ensemble()(X_test).argmax(1)

Deletions are write-ahead logged (a crash is finished on the next open, or by ``sm.resume()``), can be
batched (``sm.delete_many([DeletionRequest(...), ...])``) and signed (``signer=Signer("owner.pem")``).
"""

from . import faults
from .audit import ConstituentCheck, ExactnessReport, audit
from .certificates import Signer, keygen, verify_certificate
from .chains import ChainJob, ChainResult, ModelSpec, run_chain
from .ensemble import ShardEnsemble
from .executors import Executor, ProcessExecutor, RayExecutor, SerialExecutor, make_executor
from .ledger import Ledger, LedgerCheck
from .s3t import S3T, layer_groups
from .sharded import DeletionReport, DeletionRequest, Selection, ShardedModel
from .sharding import ShardPlan, chain_keys, make_plan
from .sisa import SISA
from .store import CheckpointStore, FsspecStore

__all__ = [
    "S3T",
    "SISA",
    "ChainJob",
    "ChainResult",
    "CheckpointStore",
    "ConstituentCheck",
    "DeletionReport",
    "DeletionRequest",
    "ExactnessReport",
    "Executor",
    "FsspecStore",
    "Ledger",
    "LedgerCheck",
    "ModelSpec",
    "ProcessExecutor",
    "RayExecutor",
    "Selection",
    "SerialExecutor",
    "ShardEnsemble",
    "ShardPlan",
    "Signer",
    "ShardedModel",
    "audit",
    "chain_keys",
    "faults",
    "keygen",
    "layer_groups",
    "make_executor",
    "make_plan",
    "run_chain",
    "verify_certificate",
]
