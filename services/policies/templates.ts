// The policy-template catalogue (reference-policy §3.4): four data documents, each passing validate.
export interface PolicyTemplate {
  id: string;
  name: string;
  description: string;
  content: string;
}

const doc = (assignment: string) => `# caracal:data-document\npackage caracal.authz\n\nimport rego.v1\n\n${assignment}\n`;

export const POLICY_TEMPLATES: readonly PolicyTemplate[] = [
  {
    id: "application-bindings",
    name: "Application Bindings",
    description: "Bind the application keys used by grants to real application ids, which arrive as input.principal.id.",
    content: doc(`app_ids := {\n\t"payments": "app-payments",\n\t"ledger": "app-ledger",\n}`),
  },
  {
    id: "resource-grants",
    name: "Resource Grants",
    description: "Declare the application that owns a resource and the scopes each role may hold on it.",
    content: doc(`grants := {"resource://example": {\n\t"application": "payments",\n\t"roles": {"payment-execution": ["example:read", "example:write"]},\n}}`),
  },
  {
    id: "label-confinement",
    name: "Label Confinement",
    description: "Cap the scopes of sessions whose principal carries a customer: label.",
    content: doc(`confinement := [{"label_prefix": "customer:", "scopes": ["example:read"]}]`),
  },
  {
    id: "zone-restriction",
    name: "Zone Restriction",
    description: "Deny overlay: any entry freezes every decision in the zone. Keep it empty to authorize normally.",
    content: doc(`restrict := {}`),
  },
];
