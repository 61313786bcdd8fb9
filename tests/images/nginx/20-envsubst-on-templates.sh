#!/bin/sh
# Stand-in for the official nginx image's template step: every /etc/nginx/templates/X.template
# becomes /etc/nginx/conf.d/X with ${VAR} replaced for the variables defined in the environment
# only, so nginx's own $variables survive.
set -eu
templates=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
suffix=${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}
output=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
[ -d "$templates" ] || exit 0
defined=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/${\1}/p' | tr '\n' ' ')
for template in "$templates"/*"$suffix"; do
  [ -f "$template" ] || continue
  name=$(basename "$template" "$suffix")
  echo "$0: $template -> $output/$name"
  envsubst "$defined" < "$template" > "$output/$name"
done
