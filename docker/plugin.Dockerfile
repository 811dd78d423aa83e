# cname-guard/plugin - the filter as a Wasm OCI image: one layer holding
# /plugin.wasm, the layout Istio's WasmPlugin (oci://...) and Envoy Gateway
# pull. Push it to your registry: see envoy/istio/README.md.
FROM scratch
COPY plugin.wasm /plugin.wasm
