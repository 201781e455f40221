# The platform decision contract (reference-policy §2.4), bundled with every policy-set version.
# Tenants author data documents in package caracal.authz; this module owns every decision and reads
# their documents only through the full data.caracal.authz.<name> paths, so an absent document is
# simply undefined (and takes the default below) instead of a compile error.
package caracal.platform.decision_contract

import rego.v1

contract_version := "2026-06-24"

default app_ids := {}

app_ids := data.caracal.authz.app_ids

default grants := {}

grants := data.caracal.authz.grants

default confinement := []

confinement := data.caracal.authz.confinement

default restrict := {}

restrict := data.caracal.authz.restrict

default risk := []

risk := data.caracal.authz.risk

default approval_tiers := []

approval_tiers := data.caracal.authz.approval_tiers

# The principal app key: the key of app_ids whose value is the acting application. Two keys with
# the same id make this complete rule conflict, which fails the evaluation (as in the reference).
app_key := key if {
	some key, id in app_ids
	id == input.principal.id
}

grant := grants[input.resource.identifier]

owns if grant.application == app_key

unrestricted if count(restrict) == 0

requested := {scope | some scope in input.context.requested_scopes}

labels := {label | some label in input.principal.labels}

has_subject_claims if input.context.subject_claims != null

has_edge if input.delegation_edge != null

has_agent_session if {
	is_string(input.context.agent_session_id)
	input.context.agent_session_id != ""
}

# Confinement only narrows: a rule whose prefix starts one of the principal's labels caps the scopes.
confinement_violated if {
	some rule in confinement
	some label in labels
	startswith(label, rule.label_prefix)
	some scope in requested
	not scope in rule.scopes
}

bootstrap if {
	owns
	requested == {"agent:lifecycle"}
	not has_subject_claims
	not has_edge
	not has_agent_session
	unrestricted
}

role_holds_all if {
	some label in labels
	scopes := grant.roles[label]
	every scope in requested {
		scope in scopes
	}
}

mint if {
	owns
	edge := input.delegation_edge
	is_string(edge.id)
	edge.id != ""
	has_agent_session
	not has_subject_claims
	count(requested) > 0
	not "agent:lifecycle" in requested
	every scope in requested {
		scope in edge.scopes
	}
	not confinement_violated
	role_holds_all
	unrestricted
}

use if {
	owns
	claims := input.context.subject_claims
	is_string(claims.delegation_edge_id)
	claims.delegation_edge_id != ""
	input.resource.identifier in claims.target
	count(requested) == 0
	some label in labels
	grant.roles[label]
	unrestricted
}

tiered := sort({{"scope": r.scope, "tier": r.tier} | some r in risk; r.scope in requested})

step_up if {
	some t in tiered
	t.tier in approval_tiers
}

step_up_diagnostics := [{"step_up_required": "human_approval"}] if step_up

else := []

risk_diagnostics := [{"risk": tiered}] if count(tiered) > 0

else := []

allow(policy, diagnostics) := {
	"decision": "allow",
	"evaluation_status": "complete",
	"determining_policies": [{"policy": policy}],
	"diagnostics": diagnostics,
}

decision := allow("caracal-bootstrap", []) if bootstrap

else := allow(concat("", ["caracal-", app_key, "-mint"]), array.concat(step_up_diagnostics, risk_diagnostics)) if mint

else := allow(concat("", ["caracal-", app_key, "-use"]), []) if use

else := {
	"decision": "deny",
	"evaluation_status": "complete",
	"determining_policies": [],
	"diagnostics": [{"reason": "no_rule_matched"}],
}
