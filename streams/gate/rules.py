"""The consent gate's decision for one piece of personal data. Pure.

Data flows only if, *at the time the data was produced*, the subject allowed the
processing it is bound for, so nothing produced after a withdrawal flows even while a
sink is still catching up. In detail, a data event is dropped when:

- processing of the subject was restricted at that time, or the data predates the
  subject's latest erasure;
- under any regime the subject has chosen under (or the default regime, for a subject
  the stream knows nothing about) the decision in force then was a withdrawal;
- no decision was in force then and the purpose rests on consent, and the regime is
  opt-in (GDPR) or the opt-out default says drop. An expired grant counts as none.

Purposes resting on contract or law always flow (unless restricted or erased);
legitimate-interest purposes flow unless objected to.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from schemas.taxonomy import (
    OPT_IN_REGIMES,
    PURPOSE_SPECS,
    Choice,
    LegalBasis,
    Purpose,
    Recipient,
    Regime,
)
from streams.intake.resolution import SubjectState


class Verdict(StrEnum):
    """Why data flowed or not (a bounded metric label)."""

    ALLOWED = "allowed"
    WITHDRAWN = "withdrawn"
    NO_CONSENT = "no_consent"
    RESTRICTED = "restricted"
    ERASED = "erased"

    @property
    def allowed(self) -> bool:
        """Data with this verdict flows on."""
        return self is Verdict.ALLOWED


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """The gate's configurable defaults."""

    opt_out_default_allow: bool = True
    default_regime: Regime = Regime.GDPR


def decide(
    policy: GatePolicy,
    state: SubjectState | None,
    purpose: Purpose,
    recipient: Recipient | None,
    at_ms: int,
) -> Verdict:
    """Whether data produced at ``at_ms`` for ``purpose`` (and ``recipient``) may flow."""
    if state is not None:
        if state.restricted_at(at_ms):
            return Verdict.RESTRICTED
        if state.erasure is not None and at_ms <= state.erasure.at_ms:
            return Verdict.ERASED
    basis = PURPOSE_SPECS[purpose].basis
    if basis in (LegalBasis.CONTRACT, LegalBasis.LEGAL_OBLIGATION):
        return Verdict.ALLOWED
    regimes = (state.regimes if state is not None else frozenset()) or {policy.default_regime}
    for regime in sorted(regimes):
        decision = None if state is None else state.effective_at(purpose, regime, recipient, at_ms)
        if decision is not None and decision.choice is Choice.WITHDRAWN:
            return Verdict.WITHDRAWN
        if decision is not None and decision.in_force_at(at_ms):
            continue
        if basis is LegalBasis.LEGITIMATE_INTEREST:
            continue
        if regime in OPT_IN_REGIMES or not policy.opt_out_default_allow:
            return Verdict.NO_CONSENT
    return Verdict.ALLOWED
