# The only rule of package caracal.authz that the platform defines: the decision tenants may not.
package caracal.authz

import rego.v1

result := data.caracal.platform.decision_contract.decision
