//! The OpenAPI 3 description of the HTTP API, generated from the handlers' annotations so it
//! cannot drift from the code (a test checks every route is in it).

use axum::Json;
use utoipa::OpenApi;

use super::{
    account, admin, apie, audit, blobs, changes, data, docs, feed, health, inspect, kopano, named,
    operations, presence, rivet, root, socketio, streams, webhooks, ws,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Hearth", description = "The REST view of Hearth's documents. Errors are JSON {code, message}; see PROTOCOL.md."),
    paths(
        account::signup, account::login, account::logout, account::refresh, account::me,
        account::delete_me, account::change_password, account::export, account::sessions,
        account::delete_session, account::rivet_login, account::rivet_logout,
        data::document, data::get_root, data::get_data, data::put_data, data::patch_data,
        data::delete_data, data::batch, data::keys, root::put, root::patch, root::delete,
        root::keys, rivet::store_list, rivet::store_get, rivet::store_put, rivet::store_post,
        rivet::store_delete, kopano::get, kopano::put, kopano::delete,
        changes::changes, changes::events, document,
        docs::list_docs, docs::shared, docs::get_doc, docs::put_doc, docs::delete_doc,
        named::get_root, named::put_root, named::patch_root, named::delete_root,
        named::get_data, named::put_data, named::patch_data, named::delete_data,
        named::root_keys, named::keys, named::batch, named::changes, named::events,
        presence::present, presence::named_present, streams::append, streams::read,
        streams::event, apie::put_event, apie::events, apie::event, apie::put_blob, apie::put_named_blob,
        apie::get_blob, apie::delete_blob,
        admin::stats, admin::overview, admin::settings, audit::lines, admin::users, admin::disable, admin::enable, admin::backup_to_dir,
        admin::backup_download, admin::create_user, admin::delete_user, admin::reset_password,
        admin::grant_admin, admin::revoke_admin, admin::import_personal_backend,
        inspect::account, inspect::end_sessions, inspect::document, inspect::edit,
        inspect::changes, inspect::events, operations::backups, operations::backup_file,
        operations::logs, feed::feed, webhooks::register, webhooks::mine, webhooks::remove,
        webhooks::resume, webhooks::register_global, webhooks::every,
        blobs::upload, blobs::upload_named, blobs::download, blobs::delete, blobs::list,
        health::live, health::ready, health::metrics, ws::upgrade, socketio::poll, socketio::post,
    ),
    components(schemas(account::Credentials, account::TokenBody, account::PasswordChange,
        account::Confirm, data::BatchOp, admin::NewUser, admin::NewPassword, webhooks::NewHook)),
    modifiers(&Security),
    security(("bearer" = []), ("session_token" = [])),
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Session-Token"))),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "OpenAPI 3")), security(()), tag = "operations")]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
