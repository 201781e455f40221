// The small HTML answer of the OAuth callback, for a browser that asked for text/html.

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

/** HTML only when Accept names text/html and not application/json (a JSON client never gets a page). */
export const wantsHtml = (accept: string | undefined): boolean => !!accept && accept.includes("text/html") && !accept.includes("application/json");

function page(title: string, lines: string[]): string {
  const body = lines.map((l) => `<p>${escapeHtml(l)}</p>`).join("\n");
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title></head>
<body>
<h1>${escapeHtml(title)}</h1>
${body}
</body>
</html>
`;
}

export const connectedPage = (grant: { id: string; provider_id: string; resource_id: string }) =>
  page("OAuth provider connected", ["The provider is connected. You can close this window.", `Grant ${grant.id} for resource ${grant.resource_id} (provider ${grant.provider_id}).`]);

export const failedPage = (code: string, description: string, requestId: string | undefined) =>
  page("OAuth provider not connected", [description, `Error: ${code}${requestId ? ` (request ${requestId})` : ""}`]);
