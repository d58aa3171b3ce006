/*
 * The configuration routes of the control panel API besides partners: gateway settings
 * (Set-CsXmppGatewayConfiguration), hosted domains, the access policy (EnableXmppAccess) and the
 * audit log. Same rules as web_api.h: session, CSRF and admin role are checked by the dispatcher
 * before these run; every change goes through the store's validated operations.
 *
 * Ownership: handlers borrow the request; `rest` is what follows the resource name in the path
 * ("" or "/name"), borrowed for the call.
 */
#pragma once

#include "admin/web_http.h"

void web_api_gateway(web_req_t *req, const char *rest);
void web_api_hosted(web_req_t *req, const char *rest);
void web_api_access(web_req_t *req, const char *rest);
void web_api_audit(web_req_t *req, const char *rest);
